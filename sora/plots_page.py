"""`dvc plots show` pages that render offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so without network every vega chart is
blank. This builds an HTML template with the three libraries inlined (the versions DVC's page asks for, from
the npm registry, checked against the registry's sha512) and hands it to `dvc plots show --html-template`.
The packages are downloaded once into .sora/vega/; later pages need no network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

from sora.errors import DataError
from sora.io import atomic_path

CACHE_DIR = Path(".sora/vega")
# (package, version, file inside the tarball, npm's dist.integrity)
PACKAGES = (
    ("vega", "5.20.2", "package/build/vega.min.js",
     "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    ("vega-lite", "5.2.0", "package/build/vega-lite.min.js",
     "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    ("vega-embed", "6.18.2", "package/build/vega-embed.min.js",
     "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
)  # fmt: skip
REGISTRY = "https://registry.npmjs.org"

# DVC's page with the scripts inlined and no {scripts} placeholder, so no CDN tag is added.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>Sora plots (offline)</title>
    <script>{js}</script>
    <style>
        table { border-spacing: 15px; }
        body { font-family: sans-serif; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def _verified(data: bytes, integrity: str, name: str) -> bytes:
    algorithm, expected = integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise DataError(f"{name}: the downloaded package does not match its {algorithm} in the npm registry")
    return data


def _script(name: str, version: str, member: str, integrity: str, cache: Path) -> str:
    tarball = cache / f"{name}-{version}.tgz"
    if tarball.is_file():
        data = _verified(tarball.read_bytes(), integrity, str(tarball))
    else:
        url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = _verified(response.read(), integrity, url)
        except OSError as err:
            raise DataError(f"could not download {url} ({err}); it is needed once, for offline plot pages") from err
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(tarball) as tmp:
            tmp.write_bytes(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.extractfile(member).read().decode("utf-8")


def offline_template(cache: Path = CACHE_DIR, packages: tuple = PACKAGES) -> Path:
    """The template file, built (and the packages fetched) on first use. Its name carries the libraries'
    versions, so changing PACKAGES builds a new one instead of reusing the old."""
    template = cache / ("offline-template-" + "-".join(f"{name}{version}" for name, version, *_ in packages) + ".html")
    if not template.is_file():
        scripts = [_script(*package, cache) for package in packages]
        # "</script" inside the code would end the tag early; "{plot_divs}" would be replaced by DVC.
        js = "\n".join(s.replace("</script", "<\\/script") for s in scripts)
        if "{plot_divs}" in js:
            raise DataError("a vega library contains DVC's {plot_divs} placeholder")
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(template) as tmp:
            tmp.write_text(PAGE.replace("{js}", js, 1), encoding="utf-8")
    return template
