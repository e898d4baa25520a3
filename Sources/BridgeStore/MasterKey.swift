import Crypto
import Foundation

/// The 32-byte key that encrypts key material at rest. Read from
/// `WABRIDGE_MASTER_KEY_FILE` (raw 32 bytes, or base64 text) or
/// `WABRIDGE_MASTER_KEY` (base64). Its description never shows it.
public struct MasterKey: Sendable, CustomStringConvertible, CustomReflectable {
    /// The 32 key bytes (SymmetricKey is not Sendable in swift-crypto 3).
    private let bytes: Data

    public init(bytes: some DataProtocol) throws(StoreError) {
        guard bytes.count == 32 else {
            throw StoreError(.invalidMasterKey, "master key must be 32 bytes, got \(bytes.count)")
        }
        self.bytes = Data(bytes)
    }

    public init(base64 text: String) throws(StoreError) {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw StoreError(.invalidMasterKey, "master key is not base64")
        }
        try self.init(bytes: data)
    }

    /// A file holding the key: exactly 32 raw bytes, or base64 text of 32 bytes.
    public init(contentsOf url: URL) throws(StoreError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw StoreError(.invalidMasterKey, "cannot read master key file \(url.path)")
        }
        if data.count == 32 {
            try self.init(bytes: data)
        } else {
            try self.init(base64: String(decoding: data, as: UTF8.self))
        }
    }

    /// The key the environment names, or nil when neither variable is set.
    /// The file wins when both are set.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(StoreError) -> MasterKey? {
        if let path = environment["WABRIDGE_MASTER_KEY_FILE"], !path.isEmpty {
            return try MasterKey(contentsOf: URL(fileURLWithPath: path))
        }
        if let text = environment["WABRIDGE_MASTER_KEY"], !text.isEmpty {
            return try MasterKey(base64: text)
        }
        return nil
    }

    /// A new random key (tests, `wabridge` key generation).
    public static func generate() -> MasterKey {
        try! MasterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    /// The device's own key: HKDF-SHA256(master, salt, info = device ID), so two
    /// devices never share a key and their blobs differ.
    func deviceKey(for id: DeviceID) -> Data {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: bytes), salt: Data("wabridge.store.v1".utf8),
            info: Data("device:\(id.rawValue)".utf8), outputByteCount: 32
        ).withUnsafeBytes { Data($0) }
    }

    public var description: String { "MasterKey(redacted)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

/// Seals and opens key-material blobs of one device. Without a key, blobs
/// are stored as they are (tag 0x00); with one, AES-256-GCM
/// (0x01 ‖ nonce ‖ ciphertext ‖ tag) with the row's identity as associated
/// data, so a blob moved to another row or device does not open.
struct KeyCipher: Sendable {
    static let plainTag: UInt8 = 0x00
    static let sealedTag: UInt8 = 0x01

    /// The device key's bytes, or nil for plaintext storage.
    let keyBytes: Data?

    init(key: Data?) { keyBytes = key }

    var encrypts: Bool { keyBytes != nil }
    private var key: SymmetricKey? { keyBytes.map { SymmetricKey(data: $0) } }

    func seal(_ plaintext: Data, context: String) throws(StoreError) -> Data {
        guard let key else { return Data([Self.plainTag]) + plaintext }
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: Data(context.utf8))
            return Data([Self.sealedTag]) + box.combined!
        } catch {
            throw StoreError(.corrupt, "cannot seal \(context)")
        }
    }

    func open(_ blob: Data, context: String) throws(StoreError) -> Data {
        guard let tag = blob.first else { throw StoreError(.corrupt, "empty blob for \(context)") }
        let body = Data(blob.dropFirst())
        switch (tag, key) {
        case (Self.plainTag, nil):
            return body
        case (Self.sealedTag, let key?):
            do {
                let box = try AES.GCM.SealedBox(combined: body)
                return try AES.GCM.open(box, using: key, authenticating: Data(context.utf8))
            } catch {
                throw StoreError(.wrongMasterKey, "key material for \(context) does not open with the configured master key")
            }
        case (Self.sealedTag, nil):
            throw StoreError(.wrongMasterKey, "key material for \(context) is encrypted and no master key is configured")
        case (Self.plainTag, _?):
            throw StoreError(.encryptionMismatch, "key material for \(context) is stored unencrypted but a master key is configured")
        default:
            throw StoreError(.corrupt, "unknown blob tag for \(context)")
        }
    }
}
