import BridgeStore
import Foundation
import WAClient

/// A device operation refused or failed, with a stable machine-readable code
/// (the admin HTTP and, later, AMQP dead-letter headers carry it verbatim).
public struct DeviceError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let idInvalid = Code(rawValue: "DEVICE_ID_INVALID")
        public static let exists = Code(rawValue: "DEVICE_EXISTS")
        public static let notFound = Code(rawValue: "DEVICE_NOT_FOUND")
        public static let idRequired = Code(rawValue: "DEVICE_ID_REQUIRED")
        public static let invalidPhoneNumber = Code(rawValue: "INVALID_PHONE_NUMBER")
        public static let alreadyLoggedIn = Code(rawValue: "ALREADY_LOGGED_IN")
        public static let notLoggedIn = Code(rawValue: "NOT_LOGGED_IN")
        public static let loginFailed = Code(rawValue: "LOGIN_FAILED")
        public static let unavailable = Code(rawValue: "UNAVAILABLE")
        public static let storage = Code(rawValue: "STORAGE_ERROR")
        /// A settings patch with an unknown field, a wrong type or a value out of range.
        public static let invalidSettings = Code(rawValue: "INVALID_SETTINGS")
        /// Another worker of the same store holds the device's lease: send the request to it
        /// (the message names it), or retry once it hands the device over.
        public static let ownedElsewhere = Code(rawValue: "DEVICE_OWNED_ELSEWHERE")
        /// The request was sent to the worker that owns the device, and it did not answer in
        /// time (stopped, frozen, cut off from the broker). It may still have been carried out:
        /// look at the device, retry once the device has moved (within the lease time).
        public static let ownerUnreachable = Code(rawValue: "OWNER_UNREACHABLE")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// Maps store and client errors onto device error codes.
    static func from(_ error: any Error) -> DeviceError {
        if let e = error as? DeviceError { return e }
        if let e = error as? StoreError {
            switch e.code {
            case .invalidDeviceID: return DeviceError(.idInvalid, e.message)
            case .deviceExists: return DeviceError(.exists, e.message)
            case .notFound: return DeviceError(.notFound, e.message)
            case .invalidSettings: return DeviceError(.invalidSettings, e.message)
            default: return DeviceError(.storage, e.message)
            }
        }
        if let e = error as? WAClientError {
            switch e.code {
            case .invalidPhoneNumber: return DeviceError(.invalidPhoneNumber, e.message)
            case .alreadyLoggedIn: return DeviceError(.alreadyLoggedIn, e.message)
            case .timeout, .connectFailed, .connectionClosed, .overloaded, .notConnected:
                return DeviceError(.unavailable, "\(e.code): \(e.message)")
            default: return DeviceError(.loginFailed, "\(e.code): \(e.message)")
            }
        }
        return DeviceError(.unavailable, String(describing: error))
    }
}
