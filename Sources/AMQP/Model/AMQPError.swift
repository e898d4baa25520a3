/// The one error type of the AMQP module.
///
/// `code` is a stable string (`amqp.access_refused`) for logs, metrics and
/// error bodies; `replyCode`/`replyText` are the broker's own words when the
/// broker said something (AMQP 0-9-1 reply codes such as 403, 404, 405, 406).
/// `isRetryable` tells callers whether the same operation may succeed later
/// on a new connection (a lost connection) or never will (a refused login).
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Broker reply codes (AMQP 0-9-1 section 1.2 constants).
        public static let contentTooLarge = Code(rawValue: "amqp.content_too_large")       // 311
        public static let noRoute = Code(rawValue: "amqp.no_route")                         // 312
        public static let noConsumers = Code(rawValue: "amqp.no_consumers")                 // 313
        public static let connectionForced = Code(rawValue: "amqp.connection_forced")       // 320
        public static let invalidPath = Code(rawValue: "amqp.invalid_path")                 // 402
        public static let accessRefused = Code(rawValue: "amqp.access_refused")             // 403
        public static let notFound = Code(rawValue: "amqp.not_found")                       // 404
        public static let resourceLocked = Code(rawValue: "amqp.resource_locked")           // 405
        public static let preconditionFailed = Code(rawValue: "amqp.precondition_failed")   // 406
        public static let frameError = Code(rawValue: "amqp.frame_error")                   // 501
        public static let syntaxError = Code(rawValue: "amqp.syntax_error")                 // 502
        public static let commandInvalid = Code(rawValue: "amqp.command_invalid")           // 503
        public static let channelError = Code(rawValue: "amqp.channel_error")               // 504
        public static let unexpectedFrame = Code(rawValue: "amqp.unexpected_frame")         // 505
        public static let resourceError = Code(rawValue: "amqp.resource_error")             // 506
        public static let notAllowed = Code(rawValue: "amqp.not_allowed")                   // 530
        public static let notImplemented = Code(rawValue: "amqp.not_implemented")           // 540
        public static let internalError = Code(rawValue: "amqp.internal_error")             // 541
        public static let serverError = Code(rawValue: "amqp.server_error")                 // any other

        // Client-side conditions.
        public static let invalidURL = Code(rawValue: "amqp.invalid_url")
        public static let invalidArgument = Code(rawValue: "amqp.invalid_argument")
        public static let connectFailed = Code(rawValue: "amqp.connect_failed")
        public static let tlsFailed = Code(rawValue: "amqp.tls_failed")
        public static let authenticationFailed = Code(rawValue: "amqp.authentication_failed")
        public static let connectionLost = Code(rawValue: "amqp.connection_lost")
        public static let connectionClosed = Code(rawValue: "amqp.connection_closed")
        public static let heartbeatTimeout = Code(rawValue: "amqp.heartbeat_timeout")
        public static let publishNacked = Code(rawValue: "amqp.publish_nacked")
        public static let publishReturned = Code(rawValue: "amqp.publish_returned")
        public static let staleDelivery = Code(rawValue: "amqp.stale_delivery")
        public static let consumerCancelled = Code(rawValue: "amqp.consumer_cancelled")
        /// A queue exists with another type (classic/quorum) or delivery
        /// limit than the one declared: the broker refuses to change it.
        public static let queueTypeMismatch = Code(rawValue: "amqp.queue_type_mismatch")
        public static let library = Code(rawValue: "amqp.library_error")
    }

    public var code: Code
    /// The AMQP reply code the broker sent, when it sent one.
    public var replyCode: UInt16?
    /// The broker's reply text, or our own explanation.
    public var message: String
    /// The AMQP class and method that failed, when known (e.g. 50/10 = queue.declare).
    public var classID: UInt16?
    public var methodID: UInt16?
    /// True when the operation may succeed if tried again later.
    public var isRetryable: Bool

    public init(
        code: Code, message: String, replyCode: UInt16? = nil,
        classID: UInt16? = nil, methodID: UInt16? = nil, isRetryable: Bool = false
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.classID = classID
        self.methodID = methodID
        self.isRetryable = isRetryable
    }

    /// Maps a broker reply code (channel.close / connection.close / basic.return) to an error.
    public static func reply(
        _ replyCode: UInt16, _ text: String, classID: UInt16? = nil, methodID: UInt16? = nil
    ) -> AMQPError {
        let code: Code
        var retryable = false
        switch replyCode {
        case 311: code = .contentTooLarge
        case 312: code = .noRoute
        case 313: code = .noConsumers
        case 320: code = .connectionForced; retryable = true
        case 402: code = .invalidPath
        case 403: code = .accessRefused
        case 404: code = .notFound
        case 405: code = .resourceLocked; retryable = true
        case 406: code = .preconditionFailed
        case 501: code = .frameError
        case 502: code = .syntaxError
        case 503: code = .commandInvalid
        case 504: code = .channelError
        case 505: code = .unexpectedFrame
        case 506: code = .resourceError; retryable = true
        case 530: code = .notAllowed
        case 540: code = .notImplemented
        case 541: code = .internalError; retryable = true
        default: code = .serverError
        }
        return AMQPError(
            code: code, message: text, replyCode: replyCode,
            classID: classID, methodID: methodID, isRetryable: retryable)
    }

    public static func connectionLost(_ why: String) -> AMQPError {
        AMQPError(code: .connectionLost, message: why, isRetryable: true)
    }

    public var description: String {
        var s = "\(code.rawValue)"
        if let replyCode { s += " (\(replyCode))" }
        s += ": \(message)"
        return s
    }
}
