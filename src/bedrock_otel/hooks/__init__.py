"""Hooks into the Anthropic SDK and its HTTP client: what is patched (targets), how (wrappers), and the patcher."""
