"""The offline `dvc plots show` template: the vega libraries inlined from verified npm tarballs, no CDN tag."""

import base64
import hashlib
import io
import tarfile

import pytest

from sora.errors import DataError
from sora.plots_page import PACKAGES, offline_template


def _package(cache, name, version, code: bytes):
    """A cached npm tarball holding package/build/<name>.min.js, and its npm-style sha512 integrity."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"package/build/{name}.min.js")
        info.size = len(code)
        archive.addfile(info, io.BytesIO(code))
    data = buffer.getvalue()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"{name}-{version}.tgz").write_bytes(data)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return (name, version, f"package/build/{name}.min.js", integrity)


def test_template_inlines_each_library_and_adds_no_cdn_tag(tmp_path):
    cache = tmp_path / "vega"
    packages = (
        _package(cache, "vega", "1.0.0", b"var vega = 1; // '</script>' in a string"),
        _package(cache, "vega-embed", "2.0.0", b"var vegaEmbed = 2;"),
    )
    page = offline_template(cache, packages).read_text(encoding="utf-8")
    assert "var vega = 1" in page and "var vegaEmbed = 2" in page
    assert "<\\/script>" in page and page.count("</script>") == 1  # the inlined code cannot close the tag
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds its CDN tags through {scripts}
    assert "<script src" not in page


def test_a_tampered_package_is_refused(tmp_path):
    cache = tmp_path / "vega"
    name, version, member, integrity = _package(cache, "vega", "1.0.0", b"var vega = 1;")
    (cache / "vega-1.0.0.tgz").write_bytes(b"not the package")
    with pytest.raises(DataError, match="vega-1.0.0.tgz: the downloaded package does not match its sha512"):
        offline_template(cache, ((name, version, member, integrity),))
    assert not list(cache.glob("offline-template*"))


def test_the_pinned_packages_are_the_ones_dvc_asks_for():
    from dvc_render.vega import VegaRenderer

    scripts = VegaRenderer.SCRIPTS
    for name, version, _, _ in PACKAGES:
        assert f"npm/{name}@{version}" in scripts
