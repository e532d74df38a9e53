"""Facebook Pages channel: Page feed comments (public) and Messenger (private), one account per Page."""
