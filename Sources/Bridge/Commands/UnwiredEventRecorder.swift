import Logging

/// Stands in for the outbox recorder until the events half of the bridge is
/// wired into `wabridge serve`: it keeps nothing and says so at debug level.
/// Replace it with the outbox's `EventRecording` in ServeCommand.
public struct UnwiredEventRecorder: EventRecording {
    private let logger: Logger
    public init(logger: Logger = Logger(label: "wabridge.events")) { self.logger = logger }
    public func record(_ event: CloudEvent) async throws {
        logger.debug("event not kept: no outbox wired", metadata: ["event.type": "\(event.type.rawValue)", "device": "\(event.deviceID)"])
    }
}
