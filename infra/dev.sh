#!/usr/bin/env bash
# Local dev/CI stack for mmhub, without Docker:
#   - Apache Kafka (single-node KRaft, broker+controller in one JVM) from the
#     Maven Central jars pinned in infra/kafka/pom.xml
#   - PostgreSQL: our own cluster of Debian's server, on 127.0.0.1:55432
#
# The broker authenticates every client (SASL/SCRAM-SHA-256; the controller listener SASL/PLAIN with one static
# user, the node itself) and authorizes with ACLs, denying what no ACL allows. Each hub process has its own
# principal; the passwords are generated into $RUN/kafka-secrets/<principal>.password (0600), where mmhub's
# settings find them.
#
# Ports and home come from the environment, so a second stack can run beside the first:
#   MMHUB_HOME (~/.cache/mmhub), MMHUB_KAFKA_PORT (9092), MMHUB_KAFKA_CONTROLLER_PORT (9093), MMHUB_PG_PORT (55432)
#
# usage: bash infra/dev.sh up|down|status|reset|browser|promtool
#   browser: install Debian's Chromium (headless) for the tracking page's browser tests, if it is absent
#
# Everything lives under $MMHUB_HOME (default ~/.cache/mmhub), outside git:
#   kafka-<version>/lib   jar cache (fetched once)
#   run/                  generated config, data dirs, pid and log files
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$REPO_ROOT/infra"
POM="$INFRA/kafka/pom.xml"
LOG4J_CONF="$INFRA/kafka/log4j2.properties"
KAFKA_TEMPLATE="$INFRA/kafka/server.properties.in"

MMHUB_HOME="${MMHUB_HOME:-${HOME:-/root}/.cache/mmhub}"
RUN="$MMHUB_HOME/run"

KAFKA_VERSION="${MMHUB_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")}"
KAFKA_HOME="$MMHUB_HOME/kafka-$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
KAFKA_MARKER="$KAFKA_HOME/.complete"
KAFKA_PORT="${MMHUB_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${MMHUB_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
KAFKA_DATA="$RUN/kafka-data"
KAFKA_PROPS="$RUN/server.properties"
KAFKA_CLUSTER_ID_FILE="$RUN/kafka-cluster-id"
KAFKA_PID="$RUN/kafka.pid"
KAFKA_LOG="$RUN/kafka.log"
KAFKA_SECRETS="$RUN/kafka-secrets"
KAFKA_ADMIN_CONFIG="$KAFKA_SECRETS/admin.properties"
# The hub's principals (SCRAM users), one per process; keep in step with hubconf.settings.PRINCIPALS. "admin" and
# the broker's own "broker" are super users; the others get only the ACLs that `mmhub topics` creates.
HUB_PRINCIPALS=(admin worker sink share gateway webhooks tools)
KAFKA_READY_TIMEOUT=90
KAFKA_STOP_TIMEOUT=30

PG_PORT="${MMHUB_PG_PORT:-55432}"
PG_DATA="$RUN/pg"
PG_SOCK="$RUN/pg-sock"
PG_LOG="$RUN/postgres.log"
PG_USER=mmhub
PG_PASSWORD=mmhub
PG_DB=mmhub
PG_DSN="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"

say() { printf '[dev] %s\n' "$*"; }
die() { printf '[dev] ERROR: %s\n' "$*" >&2; exit 1; }

apt_install() {
    [[ $EUID -eq 0 ]] || die "need root to apt-get install $*"
    say "installing $* (apt-get)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ----------------------------------------------------------------- helpers ---

# Is pid $1 alive (and not a zombie waiting to be reaped)?
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# Is something listening on 127.0.0.1:$1 ?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who listens on the port, for error messages (best effort).
port_owner() {
    if command -v ss >/dev/null; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
    fi
}

# Run a command as the postgres OS user (root cannot run initdb/postgres).
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

find_java() {
    if [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
        JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
    elif command -v java >/dev/null; then
        JAVA="$(command -v java)"
    else
        apt_install openjdk-17-jre-headless
        JAVA="$(command -v java)"
    fi
    set_kjava
}

# java with the Kafka classpath and our log4j2 config, for the CLI tools
# (an array, not a function, so that `timeout` can run it)
KJAVA=()
set_kjava() {
    KJAVA=("$JAVA" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
        -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$KAFKA_LIB/*")
}

# ------------------------------------------------------------------- kafka ---

kafka_fetch() {
    local want have=""
    want="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$KAFKA_MARKER" ]]; then have="$(cat "$KAFKA_MARKER")"; fi
    if [[ -n "$have" && "$have" == "$want" ]] && compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null || apt_install maven
    say "fetching Kafka $KAFKA_VERSION jars (first run only)…"
    local t0=$SECONDS tmp="$KAFKA_HOME/lib.tmp.$$"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$tmp"
    if ! mvn -q -B -Dstyle.color=never -f "$POM" \
            -Dmaven.repo.local="$KAFKA_HOME/m2" \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
        tail -n 40 "$KAFKA_HOME/mvn.log" >&2
        rm -rf "$tmp" "$KAFKA_HOME/m2"
        die "mvn could not fetch the Kafka $KAFKA_VERSION jars (log: $KAFKA_HOME/mvn.log)"
    fi
    compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
        || { rm -rf "$tmp"; die "mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing"; }
    rm -rf "$KAFKA_LIB" "$KAFKA_HOME/m2"   # the copied jars are all we keep
    mv "$tmp" "$KAFKA_LIB"
    printf '%s\n' "$want" >"$KAFKA_MARKER"
    say "fetched $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIB" | cut -f1)) in $((SECONDS - t0))s"
}

# A fresh random password (alphanumeric, so it needs no quoting in JAAS or property files).
new_password() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true; }

# The password of principal $1, generated on first use; <principal>.pending marks it until the broker has the user.
kafka_secret() {
    local file="$KAFKA_SECRETS/$1.password"
    if [[ ! -s "$file" ]]; then
        (umask 077 && new_password >"$file.tmp" && : >"$KAFKA_SECRETS/$1.pending" && mv "$file.tmp" "$file")
    fi
}
secret_of() { cat "$KAFKA_SECRETS/$1.password"; }

kafka_write_secrets() {
    mkdir -p "$KAFKA_SECRETS"
    chmod 0700 "$KAFKA_SECRETS"
    local p
    for p in controller broker "${HUB_PRINCIPALS[@]}"; do kafka_secret "$p"; done
    (umask 077 && cat >"$KAFKA_ADMIN_CONFIG" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret_of admin)";
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
    )
}

kafka_write_props() {
    (umask 077 && sed -e "s|@CONTROLLER_ADDRESS@|127.0.0.1:$KAFKA_CONTROLLER_PORT|" \
        -e "s|@CONTROLLER_BIND@|127.0.0.1:$KAFKA_CONTROLLER_PORT|" -e "s|@CLIENT_BIND@|$KAFKA_BOOTSTRAP|" \
        -e "s|@CLIENT_ADDRESS@|$KAFKA_BOOTSTRAP|" -e "s|@BROKER_PASSWORD@|$(secret_of broker)|" \
        -e "s|@CONTROLLER_PASSWORD@|$(secret_of controller)|g" -e "s|@DATA@|$KAFKA_DATA|" \
        "$KAFKA_TEMPLATE" >"$KAFKA_PROPS")
}

# SCRAM users for the principals whose password is new since the storage was formatted.
kafka_add_new_users() {
    local pending p
    for pending in "$KAFKA_SECRETS"/*.pending; do
        [[ -e "$pending" ]] || continue
        p="$(basename "$pending" .pending)"
        [[ "$p" == controller ]] && { rm -f "$pending"; continue; }   # a static JAAS user: in the properties
        timeout 60 "${KJAVA[@]}" kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
            --command-config "$KAFKA_ADMIN_CONFIG" --alter --entity-type users --entity-name "$p" \
            --add-config "SCRAM-SHA-256=[password=$(secret_of "$p")]" >/dev/null \
            || die "could not create the Kafka user $p"
        rm -f "$pending"
        say "created Kafka user $p"
    done
}

kafka_pid() {
    local pid
    [[ -f "$KAFKA_PID" ]] || return 1
    pid="$(cat "$KAFKA_PID" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    printf '%s\n' "$pid"
}

kafka_log_tail() {
    if [[ -f "$KAFKA_LOG" ]]; then
        printf '[dev] --- last lines of %s ---\n' "$KAFKA_LOG" >&2
        tail -n 40 "$KAFKA_LOG" >&2
    fi
}

kafka_wait_ready() {
    local pid=$1 deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            kafka_log_tail
            rm -f "$KAFKA_PID"
            die "Kafka exited during startup (log: $KAFKA_LOG)"
        fi
        # a real client metadata request, not just an open port
        if port_open "$KAFKA_PORT" &&
            timeout 30 "${KJAVA[@]}" org.apache.kafka.tools.TopicCommand \
                --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" --list \
                >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    kafka_log_tail
    die "Kafka did not answer a metadata request within ${KAFKA_READY_TIMEOUT}s (pid $pid still running; log: $KAFKA_LOG)"
}

kafka_up() {
    local pid
    if pid="$(kafka_pid)"; then
        say "Kafka already running (pid $pid)"
        return 0
    fi
    rm -f "$KAFKA_PID"
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            port_owner "$p" >&2
            die "port $p is in use by a process that is not our Kafka; stop it first"
        fi
    done
    kafka_fetch
    mkdir -p "$RUN" "$KAFKA_DATA"
    if [[ -f "$KAFKA_DATA/meta.properties" && ! -s "$KAFKA_SECRETS/admin.password" ]]; then
        die "the Kafka data in $KAFKA_DATA predates authentication (it has no admin user): run 'bash infra/dev.sh reset'"
    fi
    kafka_write_secrets
    kafka_write_props
    if [[ ! -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
        "${KJAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$KAFKA_CLUSTER_ID_FILE.tmp"
        [[ -s "$KAFKA_CLUSTER_ID_FILE.tmp" ]] || die "could not generate a Kafka cluster id"
        mv "$KAFKA_CLUSTER_ID_FILE.tmp" "$KAFKA_CLUSTER_ID_FILE"
    fi
    local fresh=0
    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        fresh=1
        say "formatting Kafka storage (cluster id $(cat "$KAFKA_CLUSTER_ID_FILE"))…"
        local scram=() p
        for p in broker "${HUB_PRINCIPALS[@]}"; do
            scram+=(--add-scram "SCRAM-SHA-256=[name=$p,password=$(secret_of "$p")]")
        done
        "${KJAVA[@]}" kafka.tools.StorageTool format --ignore-formatted \
            -t "$(cat "$KAFKA_CLUSTER_ID_FILE")" -c "$KAFKA_PROPS" "${scram[@]}" >/dev/null \
            || die "kafka-storage format failed"
        rm -f "$KAFKA_SECRETS"/*.pending   # the format made every user
    fi
    if [[ -f "$KAFKA_LOG" ]] && (($(stat -c %s "$KAFKA_LOG") > 20 * 1024 * 1024)); then
        mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
    fi
    say "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP…"
    local t0=$SECONDS
    # own session (setsid): a Ctrl-C in the calling terminal must not reach it
    setsid nohup "$JAVA" -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_PROPS" \
        </dev/null >>"$KAFKA_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$KAFKA_PID"
    kafka_wait_ready "$pid"
    if ((fresh)); then
        # a FindCoordinator request makes the broker create __consumer_offsets
        # now, rather than under the first consumer group of a test run
        timeout 60 "${KJAVA[@]}" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
            --bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" \
            --describe --group mmhub-warmup >/dev/null 2>&1 || true
    fi
    kafka_add_new_users
    say "Kafka ready (pid $pid, $((SECONDS - t0))s)"
}

kafka_down() {
    local pid
    if ! pid="$(kafka_pid)"; then
        rm -f "$KAFKA_PID"
        say "Kafka not running"
        return 0
    fi
    say "stopping Kafka (pid $pid)…"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if alive "$pid"; then
        say "Kafka still running after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.2; done
    fi
    rm -f "$KAFKA_PID"
    say "Kafka stopped"
}

# ---------------------------------------------------------------- postgres ---

# newest /usr/lib/postgresql/<major>/bin that has a server
pg_bindir() {
    find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null \
        | sort -V | tail -n1 | xargs -r dirname
}

# sets PGBIN; with "install", apt-get installs Debian's server when missing
find_pg() {
    local d
    d="$(pg_bindir)"
    if [[ -z "$d" && "${1:-}" != install ]]; then
        PGBIN=""
        return 0
    fi
    if [[ -z "$d" || ! -x "$d/postgres" ]]; then
        apt_install postgresql
        d="$(pg_bindir)"
        [[ -n "$d" && -x "$d/postgres" ]] || die "PostgreSQL server not found after apt-get install"
    fi
    PGBIN="$d"
}

# pid of our running postmaster (read as root: pg_ctl refuses to run as root)
pg_pid() {
    local pid
    [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
    pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres* ]] || return 1
    printf '%s\n' "$pid"
}

pg_running() { pg_pid >/dev/null; }

# The postgres OS user must be able to reach $RUN (e.g. $HOME=/root is 0700):
# grant it search (x) permission on each ancestor that blocks it.
pg_grant_traverse() {
    if ((EUID != 0)) || ! id postgres >/dev/null 2>&1; then return 0; fi
    local d="" part
    local -a parts
    IFS=/ read -ra parts <<<"${RUN#/}"
    for part in "${parts[@]}"; do   # top-down: /root before /root/.cache
        d="$d/$part"
        [[ -d "$d" ]] || break
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            if command -v setfacl >/dev/null; then
                say "granting the postgres user traverse (x) access to $d (ACL)"
                setfacl -m u:postgres:x "$d"
            else
                say "granting traverse (o+x) access to $d so the postgres user can reach $RUN"
                chmod o+x "$d"
            fi
        fi
    done
}

pg_up() {
    pg_grant_traverse
    if pg_running; then
        say "Postgres already running (port $PG_PORT)"
    else
        if port_open "$PG_PORT"; then
            port_owner "$PG_PORT" >&2
            die "port $PG_PORT is in use by a process that is not our Postgres; stop it first"
        fi
        mkdir -p "$RUN" "$PG_SOCK"
        if [[ $EUID -eq 0 ]]; then
            id postgres >/dev/null 2>&1 || die "OS user 'postgres' missing (install Debian's postgresql package)"
            chown postgres: "$PG_SOCK"
        fi
        chmod 0755 "$PG_SOCK"
        if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
            say "initialising Postgres cluster in $PG_DATA…"
            rm -rf "$PG_DATA"
            mkdir -p "$PG_DATA"
            if ((EUID == 0)); then chown postgres: "$PG_DATA"; fi
            chmod 0700 "$PG_DATA"
            as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --no-locale \
                --auth-local=trust --auth-host=scram-sha-256 >"$RUN/initdb.log" 2>&1 \
                || { cat "$RUN/initdb.log" >&2; die "initdb failed"; }
            echo "include_if_exists = 'mmhub.conf'" >>"$PG_DATA/postgresql.conf"
        fi
        # regenerated on every start so edits here take effect
        cat >"$PG_DATA/mmhub.conf" <<EOF
# generated by infra/dev.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 100
shared_buffers = 128MB
fsync = on
synchronous_commit = on
logging_collector = off
log_min_messages = warning
EOF
        if ((EUID == 0)); then chown postgres: "$PG_DATA/mmhub.conf"; fi
        # after a crash: give a dying/zombie postmaster a moment to be reaped,
        # else postgres refuses the stale postmaster.pid that names it
        local stale i
        stale="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
        if [[ "$stale" =~ ^[0-9]+$ ]]; then
            for ((i = 0; i < 60; i++)); do
                kill -0 "$stale" 2>/dev/null || break
                sleep 0.25
            done
        fi
        touch "$PG_LOG"
        if ((EUID == 0)); then chown postgres: "$PG_LOG"; fi
        say "starting Postgres ($(basename "$(dirname "$PGBIN")")) on 127.0.0.1:$PG_PORT…"
        as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null \
            || { tail -n 30 "$PG_LOG" >&2; die "Postgres did not start (log: $PG_LOG)"; }
    fi
    # role and database, idempotently
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
    say "Postgres ready"
}

pg_down() {
    if ! pg_running; then
        say "Postgres not running"
        return 0
    fi
    say "stopping Postgres (pid $(pg_pid))…"
    pg_grant_traverse
    as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
    say "Postgres stopped"
}

# -------------------------------------------------------------- commands ---

print_env() {
    echo "MMHUB_KAFKA=$KAFKA_BOOTSTRAP"
    echo "MMHUB_PG_DSN=$PG_DSN"
    echo "MMHUB_HOME=$MMHUB_HOME"
}

cmd_up() {
    mkdir -p "$RUN"
    find_java
    find_pg install
    kafka_up
    pg_up
    print_env
}

cmd_down() {
    find_pg
    kafka_down
    pg_down
}

cmd_status() {
    local pid rc=0
    find_pg
    if pid="$(kafka_pid)"; then
        say "Kafka $KAFKA_VERSION: running (pid $pid) on $KAFKA_BOOTSTRAP, data $KAFKA_DATA"
    else
        say "Kafka $KAFKA_VERSION: not running"
        rc=1
    fi
    if pg_running; then
        say "Postgres: running on 127.0.0.1:$PG_PORT (pid $(pg_pid)), data $PG_DATA"
    else
        say "Postgres: not running"
        rc=1
    fi
    print_env
    return $rc
}

cmd_reset() {
    cmd_down
    say "wiping data dirs under $RUN (jar cache kept)…"
    rm -rf "$KAFKA_DATA" "$KAFKA_CLUSTER_ID_FILE" "$KAFKA_PROPS" "$KAFKA_LOG" \
        "$PG_DATA" "$PG_SOCK" "$PG_LOG" "$RUN/initdb.log" "$KAFKA_SECRETS"
    say "reset done"
}

# One service down and up again, data kept: what the fault tests use for a broker restart or a database outage.
cmd_stop() {
    case "${1:-}" in
        kafka) kafka_down ;;
        postgres) find_pg; pg_down ;;
        *) die "usage: bash infra/dev.sh stop kafka|postgres" ;;
    esac
}

cmd_start() {
    mkdir -p "$RUN"
    case "${1:-}" in
        kafka) find_java; kafka_up ;;
        postgres) find_pg; pg_up ;;
        *) die "usage: bash infra/dev.sh start kafka|postgres" ;;
    esac
}

# Debian's Chromium, which the tracking page's browser tests (tests/browser) drive headless through Playwright.
cmd_browser() {
    if [[ ! -x /usr/bin/chromium ]]; then
        apt_install chromium fonts-liberation
        [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium not found after apt-get install chromium"
    fi
    say "browser: $(/usr/bin/chromium --headless --no-sandbox --version 2>/dev/null || echo /usr/bin/chromium)"
}

# Debian's Prometheus, for its promtool: the tests check infra/monitoring's alert rules with `promtool check rules`.
cmd_promtool() {
    if [[ ! -x /usr/bin/promtool ]]; then
        apt_install prometheus
        [[ -x /usr/bin/promtool ]] || die "/usr/bin/promtool not found after apt-get install prometheus"
    fi
    say "promtool: $(/usr/bin/promtool --version 2>&1 | head -n 1)"
}

case "${1:-}" in
    up) cmd_up ;;
    browser) cmd_browser ;;
    promtool) cmd_promtool ;;
    down) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    stop) cmd_stop "${2:-}" ;;
    start) cmd_start "${2:-}" ;;
    *)
        echo "usage: bash infra/dev.sh up|down|status|reset|browser|promtool|stop kafka|postgres|start kafka|postgres" >&2
        exit 2
        ;;
esac
