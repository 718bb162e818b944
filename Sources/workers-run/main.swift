#if canImport(Glibc)
import Glibc
#endif
import WorkersRun

// `workers-run`: the same runner as `workers run`, as a small executable of its own. It links
// neither Foundation nor the lab, so it starts in a few milliseconds — for scripts that start
// many short runs, and for a `parallel` symlink.
exit(RunMain.main(RunMain.processArguments()))
