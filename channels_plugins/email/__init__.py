"""The email channel: IMAP (IDLE) in, SMTP out. See doc.md."""
