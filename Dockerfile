# The Kairos image: `kairos worker` by default, any other command as arguments (`serve`, `health`, ...).
# Runtime dependencies only: the embedded dev broker (extra "dev") is not installed.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
RUN pip install --no-cache-dir .
# A non-root user (numeric, for runAsNonRoot) who owns the working directory, where the worker creates .kairos/.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/kairos --shell /usr/sbin/nologin kairos \
    && install -d -o kairos -g kairos -m 0750 /var/lib/kairos
WORKDIR /var/lib/kairos
USER 10001
ENTRYPOINT ["kairos"]
CMD ["worker"]
