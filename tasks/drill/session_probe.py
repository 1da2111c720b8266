"""Cookie-jar clients through the VIP: each keeps its session cookie and sends one request at a
time, so its hit counter should count 1, 2, 3, ... (judged by tasks.drill.sessions).

`SessionClients`: `start()`, then `stop()` returns every request in send order (the drills'
`Observation` runs them with its probes). Each client is bounded in time. The caller checks
the lab route before starting them; no proxy from the environment is ever used (the requests
go straight to the VIP).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

from tasks.core.probe import SERVED_BY
from tasks.drill.sessions import SessionAnswer, parse_session
from tasks.web.page import parse_text

CLIENTS = 3
INTERVAL_S = 0.1  # pause between a client's answer and its next request


def session_request(opener: urllib.request.OpenerDirector, url: str, client: int,
                    timeout: float) -> SessionAnswer:
    """One GET with the client's cookie jar: its session as the page shows it."""
    sent, started = time.time(), time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": "tp5-session-probe"})
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read().decode("utf-8", "replace")
            server = (answer.headers.get(SERVED_BY) or "").split()
    except urllib.error.HTTPError as exc:
        return SessionAnswer(client, sent, False, latency_s=time.monotonic() - started,
                             error=f"HTTP {exc.code}")
    except (OSError, http.client.HTTPException) as exc:
        reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return SessionAnswer(client, sent, False, latency_s=time.monotonic() - started,
                             error=reason)
    latency = time.monotonic() - started
    value = parse_text(body).get("session")
    session = parse_session(value)
    if not server or session is None:
        return SessionAnswer(client, sent, bool(server), server=server[0] if server else None,
                             latency_s=latency, error=f"no session: {value or 'no line'}")
    return SessionAnswer(client, sent, True, session[0], session[1], server[0], latency)


def cookie_opener() -> urllib.request.OpenerDirector:
    """An opener with its own cookie jar and no proxy (not even one from the environment)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPCookieProcessor(CookieJar()))


class SessionClients:
    """`clients` cookie-jar clients of http://`address`/, each bounded by `max_seconds`."""

    def __init__(self, address: str, timeout: float, clients: int = CLIENTS,
                 interval: float = INTERVAL_S, max_seconds: float = 120.0) -> None:
        self.url = f"http://{address}/"
        self.timeout, self.interval, self.max_seconds = timeout, interval, max_seconds
        self.clients = clients
        self.answers: list[SessionAnswer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True,
                                          name=f"session-client-{n}")
                         for n in range(1, clients + 1)]

    def _run(self, client: int) -> None:
        opener = cookie_opener()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            answer = session_request(opener, self.url, client, self.timeout)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self.interval)

    def start(self) -> SessionClients:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[SessionAnswer]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return sorted(self.answers, key=lambda a: a.time)
