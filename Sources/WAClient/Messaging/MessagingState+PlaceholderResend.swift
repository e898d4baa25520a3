import Foundation
import WABinary
import WAProto

extension MessagingState {
    /// Asks our phone for a message the server could not hand us (`<unavailable>`); false when not asked.
    func requestFromPhone(_ failed: UndecryptableMessage, ctx: Context, client: WAClient) async -> Bool {
        false
    }
}
