extension BridgeConfiguration {
    /// The command path's settings (`WABRIDGE_COMMAND_WAIT`, `WABRIDGE_SEND_RATE`, `WABRIDGE_SEND_BURST`).
    public func commandSettings() -> CommandSettings {
        CommandSettings(commandWait: .milliseconds(Int64((commandWait * 1000).rounded())), sendRate: sendRate,
                        sendBurst: sendBurst)
    }
}
