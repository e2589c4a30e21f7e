"""The preview's endpoints over real loopback HTTP: snapshots, stats, MJPEG, token, host check,
no file system behind the URLs, many viewers, viewers that go away."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from streamden.preview import Preview
from streamden.preview.server import MAX_STREAMS


def frames(index: int) -> tuple[np.ndarray, np.ndarray]:
    """An input (noisy gradient) and a different output, 120x160."""
    rng = np.random.default_rng(index)
    clean = np.broadcast_to(np.linspace(0, 255, 160)[None, :, None], (120, 160, 3))
    noisy = np.clip(clean + rng.normal(0, 30, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean.astype(np.uint8)


class Camera:
    """Offers a new pair to ``feed`` every 20 ms in a thread, as a live stream would."""

    def __init__(self, feed) -> None:
        self.feed = feed
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        while not feed.offered:
            time.sleep(0.005)

    def run(self) -> None:
        index = 0
        while True:
            noisy, clean = frames(index % 4)
            self.feed.offer(noisy, clean, sigma=30.0, path="full")
            index += 1
            if self.stop.wait(0.02):
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture(scope="module")
def preview():
    """A started preview with one stream fed by a :class:`Camera`."""
    p = Preview(0, title="test <job>")
    feed = p.add_stream("cam", lambda: [("frames", "12")])
    p.start()
    camera = Camera(feed)
    yield p
    camera.close()
    p.stop()


def get(p: Preview, path: str, headers: dict[str, str] | None = None, timeout: float = 10):
    request = urllib.request.Request(f"http://127.0.0.1:{p.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def decode(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_page_stats_and_snapshots(preview):
    status, headers, page = get(preview, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"test &lt;job&gt;" in page and b"<job>" not in page          # the title is escaped
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, body = get(preview, "/stats.json")
    stats = json.loads(body)
    (stream,) = stats["streams"]
    assert stream["name"] == "cam" and stream["size"] == [160, 120] and stream["version"] >= 1
    assert stream["counters"] == [["frames", "12"]] and stream["sigma"] == 30.0 and stream["path"] == "full"
    images = {}
    for side in ("input", "output", "both"):
        status, headers, body = get(preview, f"/snapshot.jpg?stream=0&side={side}")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        images[side] = decode(body)
    assert images["input"].shape == images["output"].shape == (120, 160, 3)
    assert images["both"].shape == (120, 320, 3)
    assert np.abs(images["input"].astype(int) - images["output"].astype(int)).mean() > 10   # noisy vs clean
    status, headers, body = get(preview, "/snapshot.jpg?stream=0&side=output&x=150&y=100&w=64&h=48")
    assert status == 200 and decode(body).shape == (48, 64, 3)                # a 1:1 crop, clipped into the frame
    version = int(headers["X-Streamden-Version"])
    status, headers, _ = get(preview, f"/snapshot.jpg?stream=0&side=input&v={version}")
    assert int(headers["X-Streamden-Version"]) == version                    # the same still, while kept


def test_frames_are_scaled_to_the_preview_width():
    p = Preview(0, width=80)
    feed = p.add_stream("cam")
    noisy, clean = frames(0)
    feed.offer(noisy, clean)
    p.start()
    try:
        status, _, body = get(p, "/snapshot.jpg?stream=0&side=both")
        assert status == 200 and decode(body).shape == (60, 160, 3)          # 80 px per side, aspect kept
        status, _, body = get(p, "/snapshot.jpg?stream=0&side=input&x=0&y=0&w=160&h=120")
        assert decode(body).shape == (120, 160, 3)                           # zoom: full resolution
    finally:
        p.stop()


@pytest.mark.parametrize("path, status", [
    ("/etc/passwd", 404), ("/../../etc/passwd", 404), ("//etc/passwd", 404), ("/page.html", 404),
    ("/streamden/preview/page.html", 404), ("/%2e%2e/%2e%2e/etc/passwd", 404), ("/static/", 404),
    ("/snapshot.jpg?stream=3", 400), ("/snapshot.jpg?stream=x", 400), ("/snapshot.jpg?side=../x", 400),
    ("/snapshot.jpg?x=1", 400), ("/stream.mjpg?stream=-1", 400),
])
def test_nothing_but_the_routes_answers(preview, path, status):
    got, _, body = get(preview, path)
    assert got == status
    assert b"root:" not in body


def test_head_answers_like_get_without_a_body(preview):
    # Monitoring tools (curl -I) probe with HEAD: same status and headers as GET, no body, and
    # the endless MJPEG stream ends after its headers. Read raw: http.client never reads a
    # HEAD body, so it could not see one sent by mistake.
    import socket

    for path, status, content_type in [
            ("/", 200, "text/html; charset=utf-8"), ("/stats.json", 200, "application/json"),
            ("/snapshot.jpg?stream=0&side=output", 200, "image/jpeg"),
            ("/stream.mjpg?stream=0", 200, "multipart/x-mixed-replace; boundary=frame"),
            ("/nothing", 404, "text/plain; charset=utf-8")]:
        with socket.create_connection(("127.0.0.1", preview.port), timeout=10) as sock:
            sock.sendall(f"HEAD {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].split()[1] == str(status), (path, lines[0])
        assert f"Content-Type: {content_type}" in lines, (path, lines)
        assert body == b"", (path, body[:40])


def test_snapshot_before_any_frame_is_503():
    p = Preview(0)
    p.add_stream("cam")
    p.start()
    try:
        status, headers, _ = get(p, "/snapshot.jpg?stream=0")
        assert status == 503 and headers["Retry-After"] == "1"
    finally:
        p.stop()


def test_loopback_preview_refuses_other_host_names(preview):
    assert get(preview, "/stats.json", {"Host": "attacker.example"})[0] == 403   # DNS rebinding
    assert get(preview, "/stats.json", {"Host": f"localhost:{preview.port}"})[0] == 200


def test_exposed_preview_needs_its_token():
    p = Preview(0, host="127.0.0.1")
    p.add_stream("cam")
    p.start()
    try:
        assert p.token and len(p.token) >= 20 and p.url.endswith(f"/?token={p.token}")
        for path in ("/", "/stats.json", "/snapshot.jpg?stream=0", "/stream.mjpg", "/nothing"):
            assert get(p, path)[0] == 403
        assert get(p, "/stats.json?token=wrong")[0] == 403
        status, headers, _ = get(p, f"/?token={p.token}")
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert get(p, "/stats.json", {"Cookie": cookie.split(";")[0]})[0] == 200   # the page's later requests
        assert get(p, f"/stats.json?token={p.token}")[0] == 200
        assert get(p, "/stats.json", {"Cookie": f"streamden_preview_{p.port}=wrong"})[0] == 403
    finally:
        p.stop()


def read_parts(response: http.client.HTTPResponse, count: int) -> list[bytes]:
    """``count`` JPEG parts of a multipart/x-mixed-replace response."""
    parts = []
    while len(parts) < count:
        line = response.fp.readline()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            response.fp.readline()
            parts.append(response.fp.read(length))
    return parts


def open_stream(p: Preview, side: str = "output") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    conn.request("GET", f"/stream.mjpg?stream=0&side={side}")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    return response


def test_many_mjpeg_viewers_and_one_that_goes_away(preview):
    before = set(threading.enumerate())
    viewers = [open_stream(preview, side) for side in ("input", "output", "both") * 3]
    gone = socket.create_connection(("127.0.0.1", preview.port))
    gone.sendall(b"GET /stream.mjpg?stream=0&side=input HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert gone.recv(200).startswith(b"HTTP/1.0 200")
    gone.close()                                                       # a viewer that disconnects mid-stream
    results: dict[int, list[bytes]] = {}

    def watch(i: int) -> None:
        results[i] = read_parts(viewers[i], 3)
    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(viewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == list(range(len(viewers)))
    for i, parts in results.items():
        shapes = {decode(part).shape for part in parts}
        assert shapes == {(120, 320, 3) if i % 3 == 2 else (120, 160, 3)}
    assert get(preview, "/stats.json")[0] == 200                       # still serving
    for v in viewers:
        v.close()
    end = time.monotonic() + 10                                        # every server thread ends on its own
    while time.monotonic() < end and [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        time.sleep(0.05)
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_stream_limit_and_stop_with_viewers_attached(monkeypatch):
    import streamden.preview.server as server

    monkeypatch.setattr(server, "MAX_STREAMS", 2)
    assert MAX_STREAMS == 32
    p = Preview(0)
    feed = p.add_stream("cam")
    p.start()
    camera = Camera(feed)
    try:
        open_viewers = [open_stream(p), open_stream(p)]
        assert get(p, "/stream.mjpg?stream=0")[0] == 503
        read_parts(open_viewers[0], 1)
    finally:
        camera.close()
        started = time.monotonic()
        p.stop()                                                       # open streams end, stop does not hang
        assert time.monotonic() - started < 5
    for v in open_viewers:
        v.close()


def test_encoding_only_while_someone_watches(monkeypatch):
    import streamden.preview as preview_module

    monkeypatch.setattr(preview_module, "WATCH_SECONDS", 0.5)
    p = Preview(0)
    feed = p.add_stream("cam")
    p.start()
    camera = Camera(feed)
    try:
        time.sleep(0.6)
        assert p.encoder.stills == 0 and feed.version == 0                # nobody looked: nothing encoded
        status, headers, _ = get(p, "/snapshot.jpg?stream=0&side=input")
        assert status == 200 and int(headers["X-Streamden-Version"]) >= 1
        time.sleep(1.2)
        made = p.encoder.stills
        assert made >= 1
        time.sleep(0.6)
        assert p.encoder.stills == made                                   # no request for a while: idle again
    finally:
        camera.close()
        p.stop()


def test_sixteen_bit_frames_are_shown_at_eight_bits():
    from streamden.preview.feed import JpegEncoder, StreamFeed

    feed = StreamFeed("cam")
    image = np.full((48, 64, 3), 40000, np.uint16)          # 40000 / 257 = 155.6 on the 8-bit scale
    feed.offer(image, image // 2)
    JpegEncoder([feed]).encode_pending()
    still = feed.still()
    assert abs(int(decode(still.jpeg("input")).mean()) - 156) <= 2
    assert abs(int(decode(still.jpeg("output")).mean()) - 78) <= 2
    assert decode(still.crop("both", 0, 0, 16, 16)).shape == (16, 32, 3)
