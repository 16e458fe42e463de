"""A small fake Kaggle that the *real* ``kaggle`` client talks to in tests.

With ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` the official client sends
``POST http://localhost/api/v1/competitions.CompetitionApiService/<Method>`` with a JSON body and Basic auth from
``KAGGLE_USERNAME``/``KAGGLE_KEY``. This server answers those calls from a folder laid out like ``../shared/kaggle``
(``<slug>/`` files or ``<slug>/<slug>.zip``) and can be told to fail: 401 for wrong credentials, 403 for rules not
accepted, 500 for server errors (optionally only the first N times, to exercise retries).

Submissions work like Kaggle's: StartSubmissionUpload hands out an upload URL, the client PUTs the file there,
CreateSubmission unpacks a zipped upload (as Kaggle does) and checks columns and row count against the competition's
sample submission (a wrong file becomes a submission in status ERROR with an error description, as on Kaggle),
enforces a daily limit, and ListSubmissions returns them, newest first a page at a time, with a public/private score
once "scored" (after ``pending_polls`` list calls).
"""

import base64
import csv
import hashlib
import io
import itertools
import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

API_PREFIX = "/api/v1/competitions.CompetitionApiService/"
FILES_PREFIX = "/__files/"
UPLOAD_PREFIX = "/__upload/"

FILES_DATE = 1_577_836_800.0  # Last-Modified of every competition's zip (2020-01-01): a stored file keeps its date
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."


@dataclass
class FakeKaggleState:
    root: Path
    username: str = "tester"
    key: str = "secret-key"
    # method name (or "*") -> HTTP status to answer instead of the real response
    failures: dict[str, int] = field(default_factory=dict)
    # how many more times each failure fires (absent = forever)
    failure_counts: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    daily_limit: int = 5
    pending_polls: int = 1  # ListSubmissions calls before a new submission shows as scored
    max_page_size: int = 50  # ListSubmissions pages hold at most this many, whatever the client asks (as Kaggle's)
    lose_create_responses: int = 0  # create the submission, then answer 500 anyway (a lost response)
    uploads: dict[str, bytes] = field(default_factory=dict)
    upload_names: dict[str, str] = field(default_factory=dict)  # token -> the file name the client announced
    submissions: list[dict] = field(default_factory=list)
    _refs: itertools.count = field(default_factory=lambda: itertools.count(1001))
    file_requests: list[dict] = field(default_factory=list)  # each GET of a competition's zip: slug, Range header
    stall_download_after: int | None = None  # send this many bytes of a zip, then hang until ``stall_released``
    stall_released: threading.Event = field(default_factory=threading.Event)

    def files(self, slug: str) -> dict[str, bytes]:
        blob = self.zip_bytes(slug)
        if blob is None:
            return {}
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist()}

    def check_submission(self, slug: str, blob: bytes) -> tuple[str | None, float | None]:
        """(error description, score) like Kaggle: columns and rows must match the sample submission.
        The fake scores agreement with the sample's values (it has no real labels)."""
        samples = [b for name, b in self.files(slug).items() if "submission" in name and name.endswith(".csv")]
        if not samples:
            return "no sample submission to check against", None
        expected = list(csv.reader(io.StringIO(samples[0].decode())))
        if blob.startswith(b"PK\x03\x04"):  # Kaggle unpacks a zipped submission holding one csv
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                members = [n for n in zf.namelist() if n.endswith(".csv")]
                if len(members) != 1:
                    return f"Submission archive must hold one csv file, it holds {zf.namelist()}", None
                blob = zf.read(members[0])
        try:
            got = list(csv.reader(io.StringIO(blob.decode())))
        except UnicodeDecodeError:
            return "Submission file is not valid UTF-8 CSV", None
        if not got or got[0] != expected[0]:
            return f"Submission must have columns {expected[0]}, got {got[0] if got else []}", None
        if len(got) != len(expected):
            return f"Submission must have {len(expected) - 1} rows, got {len(got) - 1}", None
        if [r[0] for r in got[1:]] != [r[0] for r in expected[1:]]:
            return "Submission ids do not match the expected ids", None
        same = sum(abs(float(a[1]) - float(b[1])) < 1e-9 for a, b in zip(got[1:], expected[1:], strict=True))
        return None, round(same / (len(expected) - 1), 5)

    def zip_bytes(self, slug: str) -> bytes | None:
        folder = self.root / slug
        shipped = folder / f"{slug}.zip"
        if shipped.is_file():
            return shipped.read_bytes()
        if not folder.is_dir():
            return None
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    zf.write(path, path.name)
        return buffer.getvalue()

    def take_failure(self, method: str) -> int | None:
        for name in (method, "*"):
            if name in self.failures:
                left = self.failure_counts.get(name)
                if left is not None:
                    if left <= 0:
                        continue
                    self.failure_counts[name] = left - 1
                return self.failures[name]
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeKaggle/1.0"
    state: FakeKaggleState  # set on the subclass made per server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"code": status, "message": message})

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.state.username and key == self.state.key

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        if not self.path.startswith(API_PREFIX):
            return self._error(404, f"no route {self.path}")
        method = self.path[len(API_PREFIX):]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.state.calls.append((method, body))
        if not self._authorized():
            return self._error(401, "Unauthenticated: invalid username or key")
        failure = self.state.take_failure(method)
        if failure == 403:
            return self._error(403, RULES_MESSAGE)
        if failure is not None:
            return self._error(failure, "Internal server error" if failure >= 500 else "Request failed")
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return self._error(404, f"unknown method {method}")
        return handler(body)

    def api_ListDataFiles(self, body: dict) -> None:  # noqa: N802
        slug = body.get("competitionName", "")
        blob = self.state.zip_bytes(slug)
        if blob is None:
            return self._error(404, f"competition {slug} not found")
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            files = [{"name": i.filename, "totalBytes": i.file_size, "creationDate": "2020-01-01T00:00:00Z"}
                     for i in zf.infolist()]
        self._send_json(200, {"files": files})

    def api_DownloadDataFiles(self, body: dict) -> None:  # noqa: N802
        slug = body.get("competitionName", "")
        if self.state.zip_bytes(slug) is None:
            return self._error(404, f"competition {slug} not found")
        # Kaggle redirects to a signed storage URL; the client names the file after the URL's extension.
        self.send_response(302)
        self.send_header("Location", f"{FILES_PREFIX}{slug}.zip")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def api_StartSubmissionUpload(self, body: dict) -> None:  # noqa: N802
        token = f"tok{len(self.state.uploads) + 1}"
        self.state.uploads[token] = b""
        self.state.upload_names[token] = body.get("fileName", "")
        self._send_json(200, {"token": token, "createUrl": f"http://localhost{UPLOAD_PREFIX}{token}"})

    def api_CreateSubmission(self, body: dict) -> None:  # noqa: N802
        slug = body.get("competitionName", "")
        token = body.get("blobFileTokens", "")
        if token not in self.state.uploads:
            return self._error(400, "Unknown upload token")
        if not self.state.files(slug):
            return self._error(404, f"competition {slug} not found")
        today = [s for s in self.state.submissions if s["slug"] == slug]
        if len(today) >= self.state.daily_limit:
            return self._error(400, f"Submission not allowed: Your team has used its daily Submission allowance "
                                    f"({self.state.daily_limit}) today, please try again tomorrow UTC.")
        error, score = self.state.check_submission(slug, self.state.uploads[token])
        ref = next(self.state._refs)
        self.state.submissions.append({
            "slug": slug, "ref": ref, "description": body.get("submissionDescription", ""), "error": error,
            "score": score, "polls": 0, "date": "2026-11-22T12:00:00Z",
        })
        if self.state.lose_create_responses > 0:
            self.state.lose_create_responses -= 1
            return self._error(500, "Internal server error")
        self._send_json(200, {"message": "Successfully submitted", "ref": ref})

    def api_GetSubmissionLimits(self, body: dict) -> None:  # noqa: N802
        slug = body.get("competitionName", "")
        made = len([s for s in self.state.submissions if s["slug"] == slug])  # all of them fall on one fake day
        left = max(0, self.state.daily_limit - made)
        self._send_json(200, {"numToday": made, "numTotal": made, "numAllowedNow": left, "limitedByTotal": False})

    def api_ListSubmissions(self, body: dict) -> None:  # noqa: N802
        slug = body.get("competitionName", "")
        newest_first = list(reversed([s for s in self.state.submissions if s["slug"] == slug]))
        start = int(body.get("pageToken") or 0)
        end = start + min(int(body.get("pageSize") or 20), self.state.max_page_size)
        rows = []
        for sub in newest_first[start:end]:
            sub["polls"] += 1
            scored = sub["polls"] > self.state.pending_polls
            row = {"ref": sub["ref"], "date": sub["date"], "description": sub["description"],
                   "fileName": "submission.csv",
                   "status": "ERROR" if sub["error"] and scored else ("COMPLETE" if scored else "PENDING")}
            if scored and sub["error"]:
                row["errorDescription"] = sub["error"]
            elif scored:
                row["publicScore"] = str(sub["score"])
                row["privateScore"] = str(round(sub["score"] - 0.01, 5))
            rows.append(row)
        self._send_json(200, {"submissions": rows, "nextPageToken": str(end) if end < len(newest_first) else ""})

    def do_PUT(self) -> None:  # noqa: N802 - the upload URL handed out by StartSubmissionUpload
        token = self.path[len(UPLOAD_PREFIX):] if self.path.startswith(UPLOAD_PREFIX) else ""
        if token not in self.state.uploads:
            return self._error(404, "unknown upload")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            self.state.uploads[token] = b"".join(chunks)
        else:
            self.state.uploads[token] = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send_json(200, {})

    def do_GET(self) -> None:  # noqa: N802
        if not self.path.startswith(FILES_PREFIX):
            return self._error(404, f"no route {self.path}")
        slug = self.path[len(FILES_PREFIX):].split("?")[0].removesuffix(".zip")
        blob = self.state.zip_bytes(slug)
        if blob is None:
            return self._error(404, "no such file")
        # Like the storage Kaggle redirects to: byte ranges, a stable ETag and date, so the client can resume.
        etag = f'"{hashlib.sha256(blob).hexdigest()[:16]}"'
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(asked.group(1)) if asked and self.headers.get("If-Range") in (None, etag) else 0
        start = start if start < len(blob) else 0
        self.state.file_requests.append({"slug": slug, "range": self.headers.get("Range")})
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(blob) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(FILES_DATE, usegmt=True))
        self.end_headers()
        stall = self.state.stall_download_after
        try:
            if stall is not None and start < stall:  # a connection that hangs mid-file, until the test lets go
                self.wfile.write(blob[start:stall])
                self.wfile.flush()
                self.state.stall_released.wait(60)
                return
            self.wfile.write(blob[start:])
        except (BrokenPipeError, ConnectionResetError):  # the client was killed meanwhile
            pass


class FakeKaggle:
    """Run the fake server on a background thread: ``with FakeKaggle(root) as fk: ...``."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 80):
        self.state = FakeKaggleState(Path(root))
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeKaggle":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stall_released.set()  # no handler left hanging
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, status: int, times: int | None = None) -> None:
        self.state.failures[method] = status
        if times is not None:
            self.state.failure_counts[method] = times

    def calls(self, method: str) -> list[dict]:
        return [body for name, body in self.state.calls if name == method]
