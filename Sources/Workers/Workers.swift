// `import Workers` brings in the whole toolkit: primitives, the thread pool, the process pool.
// The wire protocol's message types (`Frame`, `Hello`, `Submit`, …) stay out of a user's
// namespace; `import WorkersWire` (its own product) brings them in for those who want them.
@_exported import WorkersCore
@_exported import WorkersThreads
@_exported import WorkersProcesses
