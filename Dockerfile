FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["kairos"]
CMD ["worker"]
