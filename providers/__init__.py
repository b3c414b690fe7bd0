"""Network providers: one small module per network, plus the plugin contract and registry."""
