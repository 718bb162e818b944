// `import Workers` brings in the whole toolkit.
@_exported import WorkersCore
@_exported import WorkersThreads
@_exported import WorkersWire
@_exported import WorkersProcesses
