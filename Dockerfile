# The homeserver binary in a small image. Pure Go (no cgo): SQLite is
# modernc.org/sqlite, so the binary runs on any base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/homeserver ./cmd/homeserver

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data homeserver
COPY --from=build /out/homeserver /usr/local/bin/homeserver
USER homeserver
WORKDIR /data
ENTRYPOINT ["homeserver"]
