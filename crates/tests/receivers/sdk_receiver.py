"""A webhook receiver that verifies signatures with each provider's own
library, for `hookline check --dialect` to be proven against (the tests in
crates/tests/tests/it/sdk_receivers.rs run it).

    python sdk_receiver.py DIALECT SECRET [--naive KIND]

DIALECT is standard (the `standardwebhooks` package, by the scheme's
authors), stripe (Stripe's SDK: `stripe.Webhook.construct_event`), slack
(Slack's SDK: `slack_sdk.signature.SignatureVerifier`), github or shopify
(the verification snippets those providers document: HMAC-SHA256 of the
raw body, compared with `hmac.compare_digest`). It listens on a free port
of 127.0.0.1, prints the port on its first line, answers 204 to a webhook
that verifies, 400 to one that does not and 413 to a body over 64 KiB.
With --naive it is one of the receivers the battery must catch:

- `nothing`: verifies nothing and caps nothing;
- `no-timestamp`: verifies the signature with the same library but skips
  its timestamp check (where the dialect signs one), so a captured request
  can be replayed for ever;
- `reserialised`: verifies the body after `json.loads` and a compact
  `json.dumps` (what `JSON.stringify(req.body)` does behind a body
  parser), not the raw bytes that were signed.

A fourth naive receiver people write, comparing signatures with `==`
rather than in constant time, cannot be told from outside over a network
(the difference is nanoseconds in a string comparison); the correct
receivers here use the libraries' constant-time comparisons.
"""

import base64
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024


def verifier(dialect, secret):
    """A function of (body bytes, headers) that raises when the webhook
    does not verify."""
    if dialect == "standard":
        from standardwebhooks.webhooks import Webhook

        hook = Webhook(secret)
        return lambda body, headers: hook.verify(body, dict(headers.items()))
    if dialect == "stripe":
        import stripe

        def check(body, headers):
            stripe.Webhook.construct_event(body, headers.get("Stripe-Signature"), secret)

        return check
    if dialect == "slack":
        from slack_sdk.signature import SignatureVerifier

        slack = SignatureVerifier(secret)

        def check(body, headers):
            if not slack.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            ):
                raise ValueError("invalid Slack signature")

        return check
    if dialect == "github":
        # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        def check(body, headers):
            signature = headers.get("X-Hub-Signature-256")
            if not signature:
                raise ValueError("X-Hub-Signature-256 header is missing")
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, signature):
                raise ValueError("request signatures didn't match")

        return check
    if dialect == "shopify":
        # https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
        def check(body, headers):
            signature = headers.get("X-Shopify-Hmac-Sha256")
            if not signature:
                raise ValueError("X-Shopify-Hmac-Sha256 header is missing")
            expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature.encode()):
                raise ValueError("HMAC does not match")

        return check
    raise SystemExit(f"unknown dialect {dialect}")


def without_timestamp_check(dialect, secret):
    """The provider's signature check with its timestamp check left out."""
    if dialect == "standard":
        from standardwebhooks.webhooks import Webhook

        hook = Webhook(secret)

        def check(body, headers):
            when = datetime.fromtimestamp(int(headers.get("webhook-timestamp")), tz=timezone.utc)
            expected = hook.sign(headers.get("webhook-id"), when, body)
            if expected not in headers.get("webhook-signature", "").split(" "):
                raise ValueError("no matching signature")

        return check
    if dialect == "stripe":
        import stripe

        def check(body, headers):
            # tolerance=None: the library then skips the timestamp.
            stripe.WebhookSignature.verify_header(body, headers.get("Stripe-Signature"), secret, tolerance=None)

        return check
    if dialect == "slack":
        from slack_sdk.signature import SignatureVerifier

        slack = SignatureVerifier(secret)

        def check(body, headers):
            expected = slack.generate_signature(timestamp=headers.get("X-Slack-Request-Timestamp"), body=body)
            if not hmac.compare_digest(expected or "", headers.get("X-Slack-Signature") or ""):
                raise ValueError("invalid Slack signature")

        return check
    # GitHub and Shopify sign no timestamp: nothing to leave out.
    return verifier(dialect, secret)


def reserialising(dialect, secret):
    """The correct check, given the body parsed and serialised again."""
    verify = verifier(dialect, secret)

    def check(body, headers):
        verify(json.dumps(json.loads(body), separators=(",", ":")).encode(), headers)

    return check


def main():
    dialect, secret = sys.argv[1], sys.argv[2]
    naive = sys.argv[4] if sys.argv[3:4] == ["--naive"] else None
    verify = {
        None: lambda: verifier(dialect, secret),
        "nothing": lambda: None,
        "no-timestamp": lambda: without_timestamp_check(dialect, secret),
        "reserialised": lambda: reserialising(dialect, secret),
    }[naive]()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if naive != "nothing" and length > MAX_BODY:
                self.send_response(413)
                self.send_header("Connection", "close")
                self.end_headers()
                return
            body = self.rfile.read(length)
            status = 204
            if verify is not None:
                try:
                    verify(body, self.headers)
                except Exception:  # every library raises its own kind
                    status = 400
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
