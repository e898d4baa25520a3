import AMQP

extension BridgeConfiguration {
    /// The broker settings as the AMQP module takes them (every URL of
    /// `WABRIDGE_AMQP_URL`, tried in turn).
    public func amqpConfiguration() throws(AMQPError) -> AMQPConfiguration {
        try AMQPConfiguration(
            urls: AMQPConfiguration.splitURLs(amqpURL),
            tls: AMQPConfiguration.TLS(
                caFile: amqpCAFile, certFile: amqpCertFile, keyFile: amqpKeyFile,
                verifyPeer: amqpVerifyPeer, verifyHostname: amqpVerifyPeer),
            heartbeat: UInt16(amqpHeartbeat),
            connectionName: workerName)
    }
}

extension BridgeConfiguration {
    /// The broker objects, named from the prefix, of the configured queue type.
    public var topology: BridgeTopology {
        BridgeTopology(prefix: topologyPrefix, queueType: queueType, deliveryLimit: queueDeliveryLimit)
    }
}
