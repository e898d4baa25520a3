import Foundation

/// Names one decrypted payload the application has not taken over yet: the
/// stanza it came in (`stanza`, e.g. from/participant/id) and which of its
/// ciphertexts (`part`).
public struct PendingPlaintextKey: Hashable, Sendable {
    public var stanza: String
    public var part: String

    public init(stanza: String, part: String) {
        self.stanza = stanza
        self.part = part
    }
}

/// Plaintexts kept between a decryption and the application's hand-over.
///
/// A decryption moves the ratchet on, so the same ciphertext cannot be
/// decrypted twice. A receiver that must not lose a message when it dies
/// before handing it over asks the cipher to keep the plaintext
/// (`keeping:`): it is then written in the same `commit` as the session
/// change, served again when the same stanza comes back, and removed once
/// the application took it. Bounded by `prunePendingPlaintexts`.
public protocol PendingPlaintextStore: Sendable {
    func loadPendingPlaintext(_ key: PendingPlaintextKey) async throws -> Data?
    /// Stores one plaintext on its own (the default `commit` uses it; a
    /// database store writes it inside its commit transaction instead).
    func storePendingPlaintext(_ plaintext: Data, for key: PendingPlaintextKey) async throws
    /// Removes every part kept for `stanza` (the application took it).
    func removePendingPlaintexts(stanza: String) async throws
    /// Deletes the parts stored before `storedBefore`, then all but the
    /// newest `keepingNewest`; returns how many were deleted.
    @discardableResult
    func prunePendingPlaintexts(keepingNewest: Int, storedBefore: Date) async throws -> Int
}
