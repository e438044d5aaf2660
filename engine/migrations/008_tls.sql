-- Whether each attempt went over an encrypted connection (STARTTLS): Gmail's bulk-sender rules
-- ask for TLS, and an operator must be able to show which mails went in plain text.
-- NULL: no SMTP session was opened (routing failure, refused connection), or written by an
-- older runner.
ALTER TABLE delivery_attempts ADD COLUMN tls boolean;
