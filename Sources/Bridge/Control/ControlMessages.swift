import Foundation

/// An admin operation one worker asks the device's owner to carry out (docs/amqp.md,
/// "Worker control queues"). Only the owner runs a device's client, so only the owner can
/// show its QR code, pair it, log it out, reconnect or delete it.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case qrLogin = "login.qr"
        case currentQR = "login.qr.current"
        case pairCode = "login.pair-code"
        case logout
        case reconnect
        case delete
    }

    public var op: Operation
    public var device: String
    /// `login.pair-code` only.
    public var phone: String?

    public init(op: Operation, device: String, phone: String? = nil) {
        self.op = op
        self.device = device
        self.phone = phone
    }
}

/// The owner's answer: what the operation returned, or the error it ended with (the code is
/// the one the owner's admin HTTP would have answered).
public struct ControlReply: Codable, Sendable, Equatable {
    public struct Failure: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
    }

    public var qr: QRLogin?
    public var pairCode: String?
    public var error: Failure?

    public init(qr: QRLogin? = nil, pairCode: String? = nil, error: Failure? = nil) {
        self.qr = qr
        self.pairCode = pairCode
        self.error = error
    }

    init(_ e: DeviceError) { error = Failure(code: e.code.rawValue, message: e.message) }

    /// The reply as the caller sees it: its result, or the owner's error thrown again.
    func get() throws(DeviceError) -> ControlReply {
        if let error { throw DeviceError(DeviceError.Code(rawValue: error.code), error.message) }
        return self
    }
}

/// Sends a request to the worker `worker` and waits (bounded) for its reply; throws
/// `OWNER_UNREACHABLE` when it does not answer. Installed by `ControlService`.
public typealias DeviceForwarder = @Sendable (_ worker: String, _ request: ControlRequest) async throws(DeviceError) -> ControlReply
