"""RPC method handlers. Each module registers its methods with ``gateway.dispatch.method`` on import."""
