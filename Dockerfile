# molt's image: a static binary on an empty base. Build it with `make image`,
# which compiles the binary on the host (CGO_ENABLED=0, -trimpath) and uses
# bin/image as the build context, so nothing is pulled.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY molt /molt
USER 65532:65532
ENV MOLT_STATE_DIR=/var/lib/molt
ENTRYPOINT ["/molt"]
CMD ["version"]
