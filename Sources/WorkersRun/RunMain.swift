#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// `workers run`'s entry point: GNU parallel's command line in, its exit status out.
public enum RunMain {
    /// The help text.
    public static let usage = """
        USAGE: workers run [OPTIONS] [COMMAND [ARG…]] [::: ARGS… | :::: FILES… | :::+ ARGS… | ::::+ FILES…]

        Runs COMMAND once per input, many at once — GNU parallel's behaviour, compiled. Inputs come
        from ::: (several give the cartesian product), :::: or -a files, or stdin (one per line).
        The command is shell code; each substituted input is shell-quoted. With no replacement
        string, {} is appended. With no command, each input line is a command. `workers-run` is
        the same runner as a small executable of its own, which starts faster.

        Replacement strings: {} {.} {/} {//} {/.} {#} {%} and {n} {n.} {n/} {n//} {n/.}.

        OPTIONS:
          -j, --jobs N|N%|+N|-N|0   jobs at once (default: one per CPU; 0: no limit)
          -k, --keep-order          print outputs in input order
          --tag, --tagstring STR    prefix each output line with the inputs (or STR)
          -u, --ungroup             pass output through as it comes (drops -k and --tag)
          --line-buffer, --lb       whole lines as they come, jobs mixed line by line (with -k: the
                                    first job's lines live, the others' held until they come first)
          --results NAME            save each job's output instead of printing it: NAME/1/<value>/
                                    {seq,stdout,stderr}; a NAME with {} names files (.err, .seq) or,
                                    ending in /, directories; NAME.csv, .tsv, .json: one table
                                    (-.csv: on stdout). With --resume, jobs with results are skipped
          --dry-run                 print the commands instead of running them
          -v, -t                    print each command with its output (-v), or on stderr as it starts (-t)
          --shellquote              print each job's inputs shell-quoted instead of running anything
          --files                   save each job's stdout in a file (in --tmpdir or $TMPDIR) and print its name
          -q, --quote               quote the command's words too (no shell syntax in it)
          --no-shell                run the command directly, without a shell
          -I STR                    use STR instead of {}
          -N, -n N                  N inputs per job ({1}…{N}); -N0: a job per input, none on its line
          -L N, -l[N]               N lines per job, a line ending in a blank going on with the next
          -X, -m, --xargs           many inputs per command line, spread over the slots (-X repeats
                                    the words around {}; -m puts them side by side); -s N: line limit
          -0, --null; -d DELIM      input separator (default: newline)
          -E STR; -r                input ends at a value STR; blank values are skipped
          --trim n|l|r|lr           trim white space around inputs (default: none; with --colsep, lr)
          --arg-sep S, --arg-file-sep S  use S instead of ::: and ::::
          --shuf                    run the jobs in random order (reads all input first)
          --header :|N              the first line (split on tabs or --colsep), or each source's first
                                    value, names the columns: {name}; with --pipe, N lines start each block
          -C, --colsep REGEX        split each input into columns {1} {2} …
          --csv                     inputs are CSV rows (quoted fields, doubled quotes, newlines), split at
                                    --colsep (default ,)
          -a, --arg-file FILE       read inputs from FILE; --link pairs sources
          --pipe [--block SIZE] [--recend STR] [--recstart STR]
                                    split stdin into blocks (or -N records) for the jobs' stdin
          --pipe-part -a FILE       the same for a seekable file, cut by seeking (faster)
          --round-robin             with --pipe: -j jobs run for the whole input, sharing its blocks
          --cat                     with --pipe: {} is a file holding the block (removed after the job)
          --tmpdir DIR              buffer output in files there (default: in memory files)
          --joblog [+]FILE          GNU's 9-column job log (+ appends); --resume, --resume-failed
          --timeout SECS|N%         kill a job after SECS (or N% of the median run time)
          --term-seq SIG,MS,…       how jobs are stopped (default TERM,200,TERM,100,TERM,50,KILL,25)
          --retry-failed            run again the jobs the --joblog records as failed, with its commands
          --workdir DIR, --nice N   run the jobs in DIR (made if missing; {} allowed), niced by N
          --tty, --open-tty         the jobs read the terminal (--tty: also -j1 and -u unless told)
          --semaphore [--id ID] [-j N] [--fg] COMMAND   GNU's sem: COMMAND runs (in the background unless
                                    --fg) once fewer than N (default 1) of ID's commands run; --wait
                                    waits for them all; --st SECS: then run anyway (or, < 0, exit 1)
          --retries N               try a failing job up to N times; only the last output is printed
          --halt now|soon,fail|success|done=N|N%
          --delay SECS              at least SECS between job starts
          --progress                a progress line on stderr; --json: one JSON event per job on stderr
          --bar, --eta              a progress bar with the time left (reads all input first)
          --load N, --memfree SIZE  start no job while the load is above N or free memory below SIZE
          --will-cite, --no-notice  accepted; there is no notice

        EXIT STATUS: 0 if all jobs succeeded; the number of failed jobs up to 100; 101 above; 255 for
        a bad command line; with --halt now,fail=1 the failing job's status; 130/143 on SIGINT/SIGTERM.
        """

    /// Runs `arguments` (the words after `workers run`); returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        if arguments.first == "--help" || arguments.first == "-h" {
            print(usage)
            return 0
        }
        do {
            let options = try RunOptions.parse(arguments)
            if options.semaphore { return SemaphoreMode.run(options, cpus: cpuCount) }
            let runner = try Runner(options: options, cpus: cpuCount)
            return runner.run().exitStatus
        } catch {
            writeStandardError("workers run: \(error.description)\nTry 'workers run --help'.\n")
            return 255
        }
    }
}
