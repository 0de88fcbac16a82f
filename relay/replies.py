"""Every SMTP reply the relay gives, named by its code.

`R550_UNKNOWN_ALIAS` is a 550 with enhanced status 5.1.1, and so on: a test
checks that each name matches its code. The text is what the client sees:
short and plain, naming no rule, no real address and no internal detail
(those go to the log).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def with_text(self, text: str) -> Reply:
        """The same code and status with a more specific reason."""
        return Reply(self.code, self.status, text)


R250_OK = Reply(250, "2.0.0", "OK")
R250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
R250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
R250_QUEUED = Reply(250, "2.0.0", "Message accepted for delivery")
R250_REPORT_RECEIVED = Reply(250, "2.0.0", "Delivery report received")

R421_SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
R421_TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
R421_TIMEOUT = Reply(421, "4.4.2", "Timed out waiting for the client, closing connection")
R421_SESSION_TIMEOUT = Reply(421, "4.4.2", "Session time limit reached, closing connection")
R451_RATE_SENDER = Reply(451, "4.7.1", "Too many messages from this sender address, try again later")
R451_RATE_THREAD = Reply(451, "4.7.1", "Too many messages in this conversation, try again later")
R451_RATE_IP = Reply(451, "4.7.1", "Too many messages from your network address, try again later")
R451_TEMPORARY = Reply(451, "4.3.0", "Temporary local problem, try again later")
# Sender authentication (relay/auth/check.py gives the specific text).
R451_AUTH_TEMPORARY = Reply(451, "4.7.0", "Sender authentication could not be completed, try again later")
R452_ONE_CONVERSATION = Reply(452, "4.5.3", "One conversation per message: send to this alias in a separate message")
R452_ONE_REPORT = Reply(452, "4.5.3", "One returned message per transaction: send the others separately")
R452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")

R454_NO_TLS = Reply(454, "4.7.0", "TLS not available")
R500_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long: at most 998 characters per line (RFC 5321 4.5.3.1.6)")
R530_STARTTLS_FIRST = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
R550_RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied: this server only accepts mail for its aliases")
R550_ATTACHMENT = Reply(550, "5.7.1", "Attachment not allowed: only .txt, .pdf, .doc, .docx, .jpg, .gif, .tif, "
                                      ".bmp and .png files without macros, encryption or archives")
R550_UNKNOWN_ALIAS = Reply(550, "5.1.1", "No such alias here")
R550_THREAD_CLOSED = Reply(550, "5.1.1", "This alias belongs to a conversation closed by the marketplace")
R550_UNKNOWN_BOUNCE_ADDRESS = Reply(550, "5.1.1", "No such bounce address here")
R550_NOT_PARTICIPANT = Reply(550, "5.7.1", "The sender is not part of this conversation")
R550_NULL_SENDER = Reply(550, "5.7.1", "Bounces and other null-sender mail are not accepted for aliases")
R550_BAD_FROM = Reply(550, "5.7.1", "The From header must name exactly one sender address")
R550_SPF_FAIL = Reply(550, "5.7.23", "Sender authentication failed: SPF fail")
R550_AUTH_FAILED = Reply(550, "5.7.1", "Sender authentication failed: DKIM or DMARC")
R550_LINK = Reply(550, "5.7.1", "Links to websites are not allowed in messages to buyers (web addresses, "
                                "linked images or logos, images loaded from the web)")
R550_PROMOTION = Reply(550, "5.7.1", "Marketing and promotion are not allowed in messages to buyers "
                                     "(discounts, coupons, sales, other products, newsletters, social media)")
R550_REVIEW = Reply(550, "5.7.1", "Messages may not offer anything for a review, ask for positive reviews only, "
                                  "or ask a buyer to change or remove feedback")
R550_PAYMENT = Reply(550, "5.7.1", "Payments and refunds must go through the marketplace, "
                                   "not bank transfer, PayPal, gift cards or the like")
R550_ORDER_ID = Reply(550, "5.7.1", "Messages to buyers must give the order ID in the subject or in your own text")
R550_POLICY = Reply(550, "5.7.1", "Message refused by the marketplace's messaging rules")
R552_TOO_BIG = Reply(552, "5.3.4", "Message too big for this relay")
R552_HEADER_TOO_BIG = Reply(552, "5.3.4", "Message header too big for this relay")
R552_ATTACHMENTS_TOO_BIG = Reply(552, "5.3.4", "Attachments too large in all")
R552_TEXT_TOO_LONG = Reply(552, "5.3.4", "Your own text is too long to review: at most 64 KB, "
                                         "not counting the quoted earlier messages")
R553_BAD_ADDRESS = Reply(553, "5.1.3", "Malformed address")
R554_LOOP = Reply(554, "5.4.6", "Mail loop detected: too many Received headers")
R554_UNPARSEABLE = Reply(554, "5.6.0", "Message could not be parsed")
R554_TOO_MANY_PARTS = Reply(554, "5.6.0", "Too many MIME parts (at most 1000)")
R554_MIME_TOO_DEEP = Reply(554, "5.6.0", "MIME parts nested too deeply (at most 100 levels)")
