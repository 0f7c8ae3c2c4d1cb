#!/bin/sh
# Build a minimal single-layer OCI image archive from the static busybox, no registry, no docker.
# Usage: mkimage.sh OUT_DIR  -> writes OUT_DIR/busybox-oci.tar (ref name: localhost/kahu-busybox:test)
set -eu
OUT=${1:-/tmp/kahu-ctr/img}
REF=localhost/kahu-busybox:test
rm -rf "$OUT"; mkdir -p "$OUT/rootfs/bin" "$OUT/rootfs/proc" "$OUT/rootfs/sys" "$OUT/rootfs/dev" "$OUT/rootfs/etc" "$OUT/rootfs/tmp" "$OUT/layout/blobs/sha256"
cp /bin/busybox "$OUT/rootfs/bin/busybox"
for a in sh ls cat sleep ps top ip ifconfig yes dd head true; do ln -s busybox "$OUT/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$OUT/rootfs/etc/passwd"
echo 'root:x:0:' > "$OUT/rootfs/etc/group"
chmod 1777 "$OUT/rootfs/tmp"
# deterministic layer tar, then gzip -n (no name/timestamp)
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$OUT/rootfs" -cf "$OUT/layer.tar" .
DIFFID=$(sha256sum "$OUT/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$OUT/layer.tar" > "$OUT/layer.tar.gz"
LDIG=$(sha256sum "$OUT/layer.tar.gz" | cut -d' ' -f1); LSIZE=$(stat -c %s "$OUT/layer.tar.gz")
cp "$OUT/layer.tar.gz" "$OUT/layout/blobs/sha256/$LDIG"
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"kahu mkimage.sh"}]}' "$DIFFID" > "$OUT/config.json"
CDIG=$(sha256sum "$OUT/config.json" | cut -d' ' -f1); CSIZE=$(stat -c %s "$OUT/config.json")
cp "$OUT/config.json" "$OUT/layout/blobs/sha256/$CDIG"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$CDIG" "$CSIZE" "$LDIG" "$LSIZE" > "$OUT/manifest.json"
MDIG=$(sha256sum "$OUT/manifest.json" | cut -d' ' -f1); MSIZE=$(stat -c %s "$OUT/manifest.json")
cp "$OUT/manifest.json" "$OUT/layout/blobs/sha256/$MDIG"
# second image on the same layer: a "pause" image for the CRI sandbox (runs sleep forever)
PREF=localhost/kahu-pause:test
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sleep","2147483647"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"kahu mkimage.sh"}]}' "$DIFFID" > "$OUT/pconfig.json"
PCDIG=$(sha256sum "$OUT/pconfig.json" | cut -d' ' -f1); PCSIZE=$(stat -c %s "$OUT/pconfig.json")
cp "$OUT/pconfig.json" "$OUT/layout/blobs/sha256/$PCDIG"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$PCDIG" "$PCSIZE" "$LDIG" "$LSIZE" > "$OUT/pmanifest.json"
PMDIG=$(sha256sum "$OUT/pmanifest.json" | cut -d' ' -f1); PMSIZE=$(stat -c %s "$OUT/pmanifest.json")
cp "$OUT/pmanifest.json" "$OUT/layout/blobs/sha256/$PMDIG"
printf '{"imageLayoutVersion":"1.0.0"}' > "$OUT/layout/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s","io.containerd.image.name":"%s"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s","io.containerd.image.name":"%s"}}]}' "$MDIG" "$MSIZE" "$REF" "$REF" "$PMDIG" "$PMSIZE" "$PREF" "$PREF" > "$OUT/layout/index.json"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$OUT/layout" -cf "$OUT/busybox-oci.tar" oci-layout index.json blobs
# also a plain rootfs tarball (for podman import fallback)
cp "$OUT/layer.tar" "$OUT/busybox-rootfs.tar"
echo "image archive: $OUT/busybox-oci.tar  refs: $REF (sha256:$MDIG) $PREF (sha256:$PMDIG)"
