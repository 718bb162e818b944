extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max` (negative durations are 0):
    /// what timed waits, `poll` deadlines and keep-alives take.
    package var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
