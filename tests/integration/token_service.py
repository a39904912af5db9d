#!/usr/bin/python3
"""A registry token service for tests (the realm of docker-registry's `auth: token`): issues
JWTs signed RS256 by its own key, with the certificate in the `x5c` header, for the scope asked,
to clients that present the one user's Basic credentials. The registry (Debian's docker-registry)
verifies them against the certificate as its rootcertbundle.
Usage: token_service.py DIR PORT ISSUER SERVICE USER PASSWORD
Writes DIR/cert.pem before serving; serves on 127.0.0.1:PORT until killed. Logs one line per
request (path and status; never a credential or token)."""
import base64, datetime, json, os, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

directory, port, issuer, service, user, password = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
with open(os.path.join(directory, "cert.pem.tmp"), "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
os.rename(os.path.join(directory, "cert.pem.tmp"), os.path.join(directory, "cert.pem"))
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def token(scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "repository":
            access.append({"type": "repository", "name": parts[1], "actions": [a for a in parts[2].split(",") if a in ("pull", "push")]})
    t = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
    claims = {"iss": issuer, "sub": user, "aud": service, "exp": t + 300, "nbf": t - 10, "iat": t,
              "jti": b64url(os.urandom(12)), "access": access}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64url(signature)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/token":
            status, body = 404, b"{}"
        elif self.headers.get("Authorization") != expected:
            status, body = 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        elif query.get("service") != [service]:
            status, body = 400, b'{"errors":[{"code":"DENIED","message":"unknown service"}]}'
        else:
            status, body = 200, json.dumps({"token": token(query.get("scope", []))}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("token service: %s %s\n" % (urllib.parse.urlsplit(self.path).path, args[1] if len(args) > 1 else ""))
        sys.stderr.flush()

HTTPServer(("127.0.0.1", port), Handler).serve_forever()
