# hotline-bridge: control process + media workers on CPython 3.12 (pjsua2-python
# publishes wheels for 3.11 and 3.12 only). With HOTLINE_WORKERS > 1 the image
# also needs Kamailio as the SIP front, installed below.
#
#   docker run --network host -e HOTLINE_PUBLIC_HOST=<address callers reach> hotline-bridge
#
# HOTLINE_PUBLIC_HOST is required: it is the address written into SDP and Contact.
FROM python:3.12-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng kamailio \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hotline ./hotline
COPY telephony ./telephony
COPY dialplan ./dialplan
COPY agent_client ./agent_client
COPY config ./config
COPY store ./store
COPY deploy ./deploy
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/hotline hotline \
 && mkdir -p /var/lib/hotline && chown hotline /var/lib/hotline

USER hotline
ENV HOTLINE_VAR_DIR=/var/lib/hotline \
    HOTLINE_SIP_HOST=0.0.0.0 \
    HOTLINE_HTTP_HOST=0.0.0.0 \
    HOTLINE_LOG_FORMAT=json \
    HOTLINE_KAMAILIO_TEMPLATE=/app/deploy/kamailio/kamailio.cfg.tmpl
# SIP (UDP and TCP), HTTP, and the workers' RTP ranges.
EXPOSE 5060/udp 5060/tcp 8080/tcp 20000-20999/udp
STOPSIGNAL SIGTERM
CMD ["hotline", "serve"]
