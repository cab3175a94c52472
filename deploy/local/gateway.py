"""The gateway's Caddyfile: route on the first path segment to the service that owns it.

The gateway is the public door: it serves the API routes and pages, and of each service only
its API documents: ``/<service>/docs`` is a Swagger UI page reading ``/<service>/openapi.json``
(FastAPI's own ``/docs`` page asks for ``/openapi.json`` at the root, which a prefix cannot fix
without rewriting the page); Swagger UI's files come from the service itself
(``shared.api_docs``), so the page needs no internet. Nothing else of a service is reachable
through it: not ``/metrics``, ``/readyz``, ``/asyncapi.json`` nor the ``/ops`` routes.
Operators and Prometheus reach those on each service's own port.

It also holds what a client may send: a request body of at most ``MAX_BODY`` (413 beyond) and
request headers of at most ``MAX_HEADERS`` (431 beyond), so a huge upload or header never
reaches a service; and it adds the browser security headers to its own answers (the services
set them, and the pages' Content-Security-Policy, on theirs: ``shared.http_security``).

A service with several replicas is one upstream pool: Caddy takes turns between them, checks
each replica's ``/readyz`` every second (active health checks: a replica answering anything
but 200, or nothing, twice in a row gets no requests until it answers 200 again), marks a
replica it could not reach down for a while (passive health checks), and sends a request it
could not deliver to another replica. One replica is proxied to as it always was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.api_docs import ASSETS
from shared.catalog import get_catalog

#: Path patterns (Caddy syntax) each service answers on the gateway.
ROUTES: dict[str, tuple[str, ...]] = {
    "passport": (
        "/v1/learners*",
        "/v1/passports*",
        "/v1/skills*",
        "/v1/waitlist*",
        "/skills/*",
        "/passports/*",
        "/waitlist",
        "/static/*",
    ),
    "matching": ("/v1/match-requests*",),
    "sessions": ("/v1/sessions*",),
    "evidence": ("/v1/evidence*",),
    "sci": ("/v1/scores*", "/v1/raters*"),
}


def _docs_page(service: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Lemma {service} API</title>
<link rel="stylesheet" href="/{service}{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/{service}{ASSETS}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/{service}/openapi.json", dom_id: "#swagger-ui"}});</script>
</body></html>"""


#: How the gateway watches a pool of replicas (Caddy's reverse_proxy options).
HEALTH_URI = "/readyz"
HEALTH_INTERVAL = "1s"
HEALTH_TIMEOUT = "5s"  # /readyz pings the broker with a 2 s timeout; the machine may be busy
HEALTH_FAILS = 2  # checks in a row a replica must fail to be taken out (one slow answer is not)
FAIL_DURATION = "5s"  # a replica Caddy could not reach is skipped this long
TRY_DURATION = "5s"  # how long a request may wait for a replica that answers


#: The largest request body and request headers the gateway takes: a rating with its longest
#: comment is under 3 KB, a waitlist form under 1 KB.
MAX_BODY = "64KB"
MAX_HEADERS = "16KB"

#: Set on every answer that does not carry them already (``?``: only if absent).
SECURITY_HEADERS = """\theader {
\t\t?X-Content-Type-Options "nosniff"
\t\t?Referrer-Policy "no-referrer"
\t\t?X-Frame-Options "DENY"
\t}"""

#: A body over ``MAX_BODY``: a problem, as every refusal is.
TOO_LARGE = f"""\t\t@too_large expression {{err.status_code}} == 413
\t\thandle @too_large {{
\t\t\theader Content-Type "application/problem+json"
\t\t\trespond `{{"type":"about:blank","title":"Content Too Large","status":413,"detail":"the request \
body is larger than {MAX_BODY}"}}` 413
\t\t}}"""

#: What the gateway answers when no replica could (none up, or the one asked died mid-answer):
#: a 503 problem with Retry-After, whatever the proxy's own error was (502, 503, 504). A
#: service's own answers, 5xx included, pass through untouched.
UNAVAILABLE = """\t\theader Content-Type "application/problem+json"
\t\theader Retry-After "1"
\t\trespond `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"no replica of \
this service answered; try again (a write may or may not have been applied: commands are idempotent \
or refuse a repeat with 409)"}` 503"""


#: Where a service's replicas answer: a port on this machine, the ports of several, or the
#: ``host:port`` addresses of replicas elsewhere (containers, by their names).
Upstreams = int | Sequence[int] | Sequence[str]


def upstreams_of(ports: Upstreams) -> list[str]:
    return [
        p if isinstance(p, str) else f"127.0.0.1:{p}" for p in ([ports] if isinstance(ports, int) else ports)
    ]


@dataclass(frozen=True)
class GatewaySite:
    """What differs between the local stack's gateway and a deployed one; the routes do not."""

    #: The address Caddy listens on; None: every interface (a container's).
    bind: str | None = "127.0.0.1"
    title: str = "Lemma local gateway"
    #: Where callers get tokens, as the root page says it (HTML).
    tokens: str = "Tokens: <code>.venv/bin/lemma token &lt;learner_id&gt;</code>."
    #: What wrote the file, for its first line.
    generated_by: str = "`lemma stack up`"
    #: The proxies in front of the gateway whose X-Forwarded-For it keeps (Caddy's
    #: ``trusted_proxies static`` ranges), so the services count request limits per client and
    #: not per proxy; None: clients connect to the gateway itself.
    trusted_proxies: str | None = None


LOCAL_SITE = GatewaySite()


def deployed_site(generated_by: str, trusted_proxies: str | None = None) -> GatewaySite:
    """A deployed gateway's (compose, Kubernetes): every interface of its container, tokens from
    the identity provider."""
    return GatewaySite(
        bind=None,
        title="Lemma gateway",
        tokens="Tokens come from the identity provider (RS256, checked against its JWKS).",
        generated_by=generated_by,
        trusted_proxies=trusted_proxies,
    )


def reverse_proxy(upstreams: Sequence[str], indent: str = "\t\t") -> str:
    """``reverse_proxy`` to one replica as it always was, or to a health-checked pool."""
    line = f"{indent}reverse_proxy {' '.join(upstreams)}"
    if len(upstreams) == 1:
        return line
    options = (
        "lb_policy round_robin",
        f"lb_try_duration {TRY_DURATION}",
        "lb_try_interval 100ms",
        f"health_uri {HEALTH_URI}",
        f"health_interval {HEALTH_INTERVAL}",
        f"health_timeout {HEALTH_TIMEOUT}",
        "health_status 200",
        "health_passes 1",
        f"health_fails {HEALTH_FAILS}",
        f"fail_duration {FAIL_DURATION}",
        "max_fails 1",
    )
    body = "".join(f"{indent}\t{option}\n" for option in options)
    return f"{line} {{\n{body}{indent}}}"


def _root_page(gateway_port: int, services: Mapping[str, Upstreams], site: GatewaySite) -> str:
    items = []
    for name, ports in services.items():
        routes = ", ".join(p.rstrip("*") for p in ROUTES.get(name, ()))
        where = ", ".join(f"http://{u}" for u in upstreams_of(ports))
        items.append(
            f'<li><b>{name}</b> ({routes}): <a href="/{name}/docs">API docs</a>, '
            f"operators (readiness, metrics, events, <code>/ops</code>): {where}</li>"
        )
    lines = "\n".join(items)
    pages = "\n".join(
        f'<li><a href="/skills/{skill.id}">{skill.name}</a>: the skill page and its waitlist form</li>'
        for skill in get_catalog().skills
    )
    listening = f"http://{site.bind}:{gateway_port}" if site.bind else f"port {gateway_port}"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{site.title}</title></head>
<body><h1>{site.title}</h1>
<p>Listening on {listening}. Routes go to the service that owns their
first path segment. {site.tokens}</p>
<h2>Pages</h2>
<ul>
{pages}
<li>Skill Passports: <code>/passports/&lt;handle&gt;</code></li>
</ul>
<h2>APIs</h2>
<p>Each service's OpenAPI document (<code>/&lt;service&gt;/openapi.json</code>, browsable at
<code>/&lt;service&gt;/docs</code>). Readiness, metrics, the AsyncAPI document of its events and
the operators' routes are on the service's own port, not here.</p>
<ul>
{lines}
</ul></body></html>"""


def _heredoc(text: str, marker: str = "HTML") -> str:
    if any(line.strip() == marker for line in text.splitlines()):
        raise ValueError(f"page text contains the heredoc marker {marker!r}")
    # Caddy reads `{$VAR}` as an environment variable anywhere in the file.
    return f"<<{marker}\n{text.replace('{$', '{ $')}\n{marker}"


def render_caddyfile(
    gateway_port: int,
    services: Mapping[str, Upstreams],
    caddy_dir: Path,
    site: GatewaySite = LOCAL_SITE,
) -> str:
    """The Caddyfile of a gateway on ``gateway_port`` (127.0.0.1 unless ``site`` says otherwise);
    ``services`` maps a name to its port, or to the ports or addresses of its replicas
    (load-balanced, health-checked)."""
    unknown = set(services) - set(ROUTES)
    if unknown:
        raise ValueError(f"no gateway routes for {sorted(unknown)}")
    blocks: list[str] = []
    for name, ports in services.items():
        if not upstreams_of(ports):
            raise ValueError(f"no replica of {name} to route to")
        proxy = reverse_proxy(upstreams_of(ports))
        patterns = " ".join(ROUTES[name])
        page = _heredoc(_docs_page(name)).replace("\n", "\n\t\t")
        blocks.append(
            f"\t@{name} path {patterns}\n"
            f"\thandle @{name} {{\n{proxy}\n\t}}\n"
            f"\thandle /{name}/docs {{\n"
            f'\t\theader Content-Type "text/html; charset=utf-8"\n'
            f"\t\trespond {page} 200\n\t}}\n"
            f"\t@{name}_docs path /{name}/openapi.json /{name}{ASSETS}/*\n"
            f"\thandle @{name}_docs {{\n\t\turi strip_prefix /{name}\n{proxy}\n\t}}"
        )
    root = _heredoc(_root_page(gateway_port, services, site)).replace("\n", "\n\t\t")
    routes = "\n".join(blocks)
    bind = f"\n\tbind {site.bind}" if site.bind else ""
    proxies = f"\n\t\ttrusted_proxies static {site.trusted_proxies}" if site.trusted_proxies else ""
    return f"""# Generated by {site.generated_by}; edits are overwritten.
{{
	admin off
	persist_config off
	auto_https off
	grace_period 2s
	storage file_system {caddy_dir / "data"}
	servers {{
		max_header_size {MAX_HEADERS}{proxies}
	}}
}}

http://:{gateway_port} {{{bind}
	request_body {{
		max_size {MAX_BODY}
	}}
{SECURITY_HEADERS}
{routes}
	handle / {{
		header Content-Type "text/html; charset=utf-8"
		respond {root} 200
	}}
	handle {{
		respond "not found: no service owns this path" 404
	}}
	handle_errors {{
{TOO_LARGE}
		@unavailable expression {{err.status_code}} in [502, 503, 504]
		handle @unavailable {{
	{UNAVAILABLE.replace(chr(10), chr(10) + chr(9))}
		}}
	}}
}}
"""
