#!/usr/bin/env python3
"""Add a hand-written OCI image index to an OCI layout made by umoci.

usage: mkindex.py LAYOUT INDEX_TAG ARCH_TAG...

Each ARCH_TAG names a single-platform image manifest already in LAYOUT (tagged by
umoci via org.opencontainers.image.ref.name); its platform is read from its config.
The index blob is written to LAYOUT/blobs/sha256/ and tagged INDEX_TAG in index.json,
so `skopeo copy --all oci:LAYOUT:INDEX_TAG docker://...` pushes every platform.
"""
import hashlib
import json
import os
import sys

REF = "org.opencontainers.image.ref.name"
INDEX_MT = "application/vnd.oci.image.index.v1+json"


def blob_path(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    layout, index_tag, arch_tags = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    by_tag = {d.get("annotations", {}).get(REF): d for d in top["manifests"]}
    children = []
    for tag in arch_tags:
        desc = by_tag[tag]
        with open(blob_path(layout, desc["digest"])) as f:
            manifest = json.load(f)
        with open(blob_path(layout, manifest["config"]["digest"])) as f:
            config = json.load(f)
        children.append({
            "mediaType": desc["mediaType"],
            "digest": desc["digest"],
            "size": desc["size"],
            "platform": {"architecture": config["architecture"], "os": config["os"]},
        })
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_MT, "manifests": children},
                       separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(index).hexdigest()
    with open(blob_path(layout, digest), "wb") as f:
        f.write(index)
    top["manifests"] = [d for d in top["manifests"] if d.get("annotations", {}).get(REF) != index_tag]
    top["manifests"].append({"mediaType": INDEX_MT, "digest": digest, "size": len(index),
                             "annotations": {REF: index_tag}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)
    print(digest)


if __name__ == "__main__":
    main()
