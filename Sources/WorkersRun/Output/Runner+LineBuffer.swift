#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// `--line-buffer`: the poll loop's relay of each job's whole lines as they come.
extension Runner {
    /// `--line-buffer`: reads what `fd` has, writes every complete line (tagged if asked) to
    /// `target` and keeps the rest; at the end of the pipe (or `final`, when the job has exited),
    /// writes the rest too and closes it.
    /// With `-k`, a job not yet first writes its lines (untagged: the tag is added when they are
    /// printed) to its held buffer instead.
    func relay(_ job: inout Running, stdout: Bool, final: Bool = false) {
        let held = stdout ? job.heldOut : job.heldErr
        let target = held?.raw ?? (stdout ? STDOUT_FILENO : STDERR_FILENO)
        let tagText = held == nil ? job.tag : nil
        if stdout {
            job.relayedOut += relayLines(&job.stdout, pending: &job.partialOut, to: target, tag: tagText, final: final)
        } else {
            _ = relayLines(&job.stderr, pending: &job.partialErr, to: target, tag: tagText, final: final)
        }
    }

    /// Returns the bytes read.
    func relayLines(_ pipe: inout OwnedDescriptor?, pending: inout [UInt8], to target: Int32, tag tagText: String?, final: Bool) -> Int {
        guard let fd = pipe?.raw else { return 0 }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var ended = false
        var total = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(fd, into: $0) }
            if count > 0 { pending.append(contentsOf: chunk[0..<count]); total += count; continue }
            ended = count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
            break
        }
        if let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) {
            output.writeLines(pending[...lastNewline], to: target, tag: tagText)
            pending.removeSubrange(...lastNewline)
        }
        if ended || final {
            if !pending.isEmpty { output.writeLines(pending[...], to: target, tag: tagText) }
            pending.removeAll()
            pipe = nil
        }
        return total
    }
}
