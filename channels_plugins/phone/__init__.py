"""Phone channel: CDR imports, CTI call events and Twilio callbacks become tickets; replies are logged call-backs."""
