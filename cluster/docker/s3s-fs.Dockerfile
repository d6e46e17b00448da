# The object store for auction images, built like the node image (see Dockerfile):
# `cluster/bin/docker-cluster build` stages the s3s-fs binary installed by cluster/bin/setup,
# the shared libraries it links and a minimal /etc, and this copies that tree into an empty
# image. Objects live in /data (one directory per bucket). The keys are arguments, given by
# the compose file: `--access-key KEY --secret-key SECRET /data`. It stops gracefully on
# SIGINT only (as PID 1 it ignores SIGTERM), hence `stop_signal: SIGINT` in compose.
FROM scratch
COPY rootfs/ /
VOLUME ["/data"]
EXPOSE 9000
ENV RUST_LOG=warn
ENTRYPOINT ["/usr/local/bin/s3s-fs", "--host", "0.0.0.0", "--port", "9000"]
CMD ["/data"]
