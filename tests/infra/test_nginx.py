"""infra/nginx/default.conf: `nginx -t` on a copy (upstream pointed at loopback, since `gateway`
only resolves inside compose/Kubernetes), plus the proxy contract: same-origin API paths, SSE
without buffering, upload size above the gateway's 20 MB, no public /metrics."""

from __future__ import annotations

import re

import pytest
from infra_helpers import INFRA, require_tool, run

pytestmark = pytest.mark.infra

CONF = INFRA / "nginx" / "default.conf"


def test_nginx_accepts_the_config(tmp_path):
    nginx = require_tool("nginx", "apt-get install -y nginx-light")
    site = tmp_path / "default.conf"
    text = CONF.read_text()
    assert "server gateway:8000;" in text
    site.write_text(text.replace("server gateway:8000;", "server 127.0.0.1:8000;"))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  fastcgi_temp_path {tmp_path}/fastcgi;\n  uwsgi_temp_path {tmp_path}/uwsgi;\n  scgi_temp_path {tmp_path}/scgi;\n"
        f"  include {site};\n}}\n"
    )
    result = run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)])
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(main.read_text().replace(str(site), str(site) + "x"))
    site_x = tmp_path / "default.confx"
    site_x.write_text(site.read_text().replace("proxy_buffering off;", "proxy_buffering nope;"))
    assert run([nginx, "-t", "-p", str(tmp_path), "-c", str(broken)]).returncode != 0


def _locations(text: str) -> dict[str, str]:
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"location\s+([^{]+)\{(.*?)\n    \}", text, re.S)}


def test_proxy_contract():
    text = CONF.read_text()
    locs = _locations(text)
    events = next(body for loc, body in locs.items() if "events" in loc)
    assert "proxy_buffering off;" in events
    api = next(body for loc, body in locs.items() if "v1|predict" in loc)
    assert "proxy_pass http://damagelens_gateway;" in api
    assert any("healthz|readyz" in loc for loc in locs)
    assert not any("metrics" in loc for loc in locs), "/metrics must not be public"
    size = re.search(r"client_max_body_size\s+(\d+)m;", text)
    assert size and 20 < int(size.group(1)) <= 50
    batch = locs["= /v1/inspections"]  # every photo of an inspection in one body: 200 MB by default
    assert int(re.search(r"client_max_body_size\s+(\d+)m;", batch).group(1)) > 200
    assert "proxy_pass http://damagelens_gateway;" in batch and "proxy_request_buffering off;" in batch
    assert "listen 8080;" in text
    assert "try_files $uri $uri/ /index.html;" in text
