# molt's image: a static binary on an empty base. Build it with `make image`,
# which compiles the binary on the host (CGO_ENABLED=0, -trimpath) and
# prepares bin/image as the build context, so nothing is pulled and nothing
# runs in the build (scratch has no shell, so there is no RUN):
#
#   rootfs/        → /          owned by root: /tmp (mode 1777) and /var/lib
#   varlib/molt    → /var/lib/  owned by molt's user: the state directory
#                               (mode 0700, kept by COPY); a named volume
#                               mounted there takes this owner and mode when
#                               it is first created
#
# Only COPY --chown is used, never --chmod: the classic builder (Docker
# Engines before BuildKit) has --chown but not --chmod, so the modes come
# from the build context.
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 varlib/ /var/lib/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY molt /molt
USER 65532:65532
ENV MOLT_STATE_DIR=/var/lib/molt
ENTRYPOINT ["/molt"]
CMD ["version"]

# Last, so that a new commit changes no layer above.
ARG VERSION=dev
ARG REVISION=
ARG SOURCE=https://github.com/molt-dev/molt
LABEL org.opencontainers.image.title="molt" \
      org.opencontainers.image.description="GitOps reconciler: keeps a fleet of immutable instances converged to a Git branch" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
