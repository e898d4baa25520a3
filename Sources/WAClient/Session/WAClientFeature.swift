import WABinary

/// A feature plugged into a `WAClient` (phase 2: messages, receipts, prekeys,
/// usync, groups), as whatsmeow keeps one file per feature and the client
/// only routes.
///
/// `handle(_:client:)` runs on the client's read loop, in arrival order, for
/// every stanza whose tag is in `stanzaTags` (or, for `iq`, whose `xmlns` is in
/// `iqNamespaces` and that no pending request claimed). It must not wait for
/// an IQ answer there (the answer arrives on the same loop): start a `Task`
/// for anything that does. `didLogin` runs in its own task after each
/// `<success>` (prekey count check and upload belong there).
public protocol WAClientFeature: Sendable {
    var stanzaTags: Set<String> { get }
    var iqNamespaces: Set<String> { get }
    func handle(_ node: Node, client: WAClient) async
    func didLogin(_ info: LoginInfo, client: WAClient) async
    /// The connection ended (any reason); the client may reconnect after this.
    func linkClosed(client: WAClient) async
    /// The login's offline batch is through (`<ib><offline/>`): every stanza the server held
    /// for this device was handed to `handle` before this.
    func offlineSyncCompleted(client: WAClient) async
}

extension WAClientFeature {
    public var stanzaTags: Set<String> { [] }
    public var iqNamespaces: Set<String> { [] }
    public func handle(_ node: Node, client: WAClient) async {}
    public func didLogin(_ info: LoginInfo, client: WAClient) async {}
    public func linkClosed(client: WAClient) async {}
    public func offlineSyncCompleted(client: WAClient) async {}
}
