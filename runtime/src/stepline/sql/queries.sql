-- The hot paths of Stepline as named SQL: the step transaction (inbox, process,
-- outbox), the job's end, the relay's claim, and the effect ledger in customers'
-- databases. Parameters are psycopg %(name)s.
-- A `-- fragment:` is a piece written once and used as {name} inside queries.

-- name: deliveries_begin
-- The start of many deliveries in one round trip: for each, whether its consumer has seen
-- the event, the process and its job as they were, what admission says of its account
-- and workflow now (a block stops pending work), and the process marked running when it
-- may run. The marks commit without waiting for the WAL flush: lost in a crash, they
-- only leave a process shown pending until the redelivery marks it again.
WITH soft AS (SELECT set_config('synchronous_commit', 'off', true) AS done),
d AS (SELECT * FROM jsonb_to_recordset(%(deliveries)s)
      AS d(i int, consumer text, event_id text, process_id uuid, account_id uuid,
           attempt int)),
state AS (
    SELECT d.i, d.process_id, d.attempt, i.seen IS NOT NULL AS seen,
           p.status, p.account_id, p.account_id IS NOT DISTINCT FROM d.account_id AS ours,
           j.status AS job_status, a.monthly_quota,
           a.blocked_at IS NOT NULL AS account_blocked, a.blocked_reason AS account_blocked_reason,
           w.blocked_at IS NOT NULL AS workflow_blocked, w.blocked_reason AS workflow_blocked_reason
    -- each a look-up by key (LIMIT 1 keeps the planner from joining whole tables: it
    -- takes jsonb_to_recordset for 100 rows, and at a few thousand processes it hashed
    -- the whole table for every batch of three deliveries)
    FROM d LEFT JOIN LATERAL (SELECT true AS seen FROM inbox
                              WHERE consumer = d.consumer AND event_id = d.event_id
                              LIMIT 1) i ON true
    LEFT JOIN LATERAL (SELECT status, account_id, job_id FROM processes
                              WHERE id = d.process_id LIMIT 1) p ON true
    LEFT JOIN LATERAL (SELECT status, workflow_id FROM jobs WHERE id = p.job_id LIMIT 1) j ON true
    LEFT JOIN LATERAL (SELECT monthly_quota, blocked_at, blocked_reason FROM accounts
                       WHERE id = p.account_id LIMIT 1) a ON true
    LEFT JOIN LATERAL (SELECT blocked_at, blocked_reason FROM workflows
                       WHERE id = j.workflow_id LIMIT 1) w ON true),
began AS (
    UPDATE processes p
    SET status = 'running', attempt = s.attempt, started_at = coalesce(p.started_at, now())
    FROM soft, state s
    -- not yet ended, said so that the planner goes by the key, not by the partial index
    -- of outstanding processes (a scan of all of them in a fan-out)
    WHERE p.id = s.process_id AND p.status NOT IN ('succeeded', 'failed', 'cancelled')
      AND soft.done IS NOT NULL
      AND NOT s.seen AND s.ours AND s.job_status <> 'cancelled'
      AND NOT s.account_blocked AND NOT s.workflow_blocked
    RETURNING p.id)
SELECT s.i, s.seen, s.status, s.account_id, s.ours, s.job_status, s.monthly_quota,
       s.account_blocked, s.account_blocked_reason, s.workflow_blocked,
       s.workflow_blocked_reason
FROM state s ORDER BY s.i;

-- name: inbox_record
-- The one statement that makes a delivery count: no row back means another delivery of
-- the same event already committed, and this transaction must roll back.
INSERT INTO inbox (consumer, event_id, process_id)
VALUES (%(consumer)s, %(event_id)s, %(process_id)s)
ON CONFLICT DO NOTHING
RETURNING 1;

-- name: process_succeed
UPDATE processes
SET status = 'succeeded', output = %(output)s, logs = coalesce(logs, '[]'::jsonb) || %(logs)s, error = NULL,
    finished_at = now()
WHERE id = %(process_id)s AND status IN ('pending', 'running');

-- name: steps_succeed
-- The successes of many deliveries in one statement, so one round trip and, on a
-- connection in autocommit, one transaction and one WAL flush: for each, the inbox row
-- that makes it count, the process's result, its next processes and their outbox rows.
-- Nothing after the inbox row is written for a delivery another one counted first, and no
-- next step for a process cancelled meanwhile. The caller sends each event once a batch
-- (a repeat is a duplicate it answers itself). Foreign keys are checked at the end of the
-- statement, when the new processes exist.
WITH d AS (SELECT * FROM jsonb_to_recordset(%(deliveries)s)
           AS d(i int, consumer text, event_id text, process_id uuid, output jsonb,
                logs jsonb)),
counted AS (
    INSERT INTO inbox (consumer, event_id, process_id)
    SELECT consumer, event_id, process_id FROM d
    ON CONFLICT DO NOTHING
    RETURNING consumer, event_id),
done AS (
    UPDATE processes p
    SET status = 'succeeded', output = d.output, logs = coalesce(p.logs, '[]'::jsonb) || d.logs,
        error = NULL, finished_at = now()
    FROM d JOIN counted c ON c.consumer = d.consumer AND c.event_id = d.event_id
    -- not yet ended, said so that the planner goes by the key (as in deliveries_begin)
    WHERE p.id = d.process_id AND p.status NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING p.id),
next_processes AS (
    {new_processes}
    WHERE r.parent_id IN (SELECT id FROM done)
    RETURNING id, parent_id),
next_rows AS (
    {new_outbox_rows}
    WHERE r.process_id IN (SELECT id FROM next_processes)
    RETURNING 1)
SELECT d.i, c.event_id IS NOT NULL AS counted, coalesce(s.sent, 0) AS sent,
       (SELECT count(*) FROM next_rows) AS rows_written
FROM d LEFT JOIN counted c ON c.consumer = d.consumer AND c.event_id = d.event_id
LEFT JOIN (SELECT parent_id, count(*) AS sent FROM next_processes GROUP BY parent_id) s
       ON s.parent_id = d.process_id
ORDER BY d.i;

-- name: process_fail
UPDATE processes
SET status = 'failed', error = %(error)s, logs = coalesce(logs, '[]'::jsonb) || %(logs)s, finished_at = now()
WHERE id = %(process_id)s AND status IN ('pending', 'running')
RETURNING job_id, account_id;

-- name: process_wait_retry
-- A temporary failure with attempts left: back to pending until the retry is delivered.
UPDATE processes
SET status = 'pending', error = %(error)s, logs = coalesce(logs, '[]'::jsonb) || %(logs)s
WHERE id = %(process_id)s AND status IN ('pending', 'running');

-- name: process_cancel
UPDATE processes SET status = 'cancelled', finished_at = now()
WHERE id = %(process_id)s AND status IN ('pending', 'running');

-- fragment: new_processes
-- Pending processes from a JSON array of rows (messages.outgoing makes them), one round
-- trip however many. Written once, used by every query that creates processes. Each
-- carries its function's price per process as it is now: the meter is this row, written
-- once (a service step carries none: its call is billed on the child job).
INSERT INTO processes (id, job_id, account_id, workflow_version_id, step_id, step_key,
                       function, parent_id, input, unit_price)
SELECT r.id, r.job_id, r.account_id, r.workflow_version_id, r.step_id, r.step_key,
       r.function, r.parent_id, r.input,
       CASE WHEN f.kind <> 'service' THEN f.price_per_process END
FROM jsonb_to_recordset(%(processes)s) AS r(id uuid, job_id uuid, account_id uuid,
     workflow_version_id uuid, step_id uuid, step_key text, function text,
     parent_id uuid, input jsonb)
LEFT JOIN functions f ON f.name = r.function

-- fragment: new_outbox_rows
-- Outbox rows from a JSON array of rows (messages.outbox_row makes them); a row without
-- not_before is due at once.
INSERT INTO outbox (event_id, destination, job_id, process_id, account_id, attributes, data,
                    not_before)
SELECT r.event_id, r.destination, r.job_id, r.process_id, r.account_id, r.attributes, r.data,
       coalesce(r.not_before, now())
FROM jsonb_to_recordset(%(rows)s) AS r(event_id uuid, destination text, job_id uuid,
     process_id uuid, account_id uuid, attributes jsonb, data jsonb, not_before timestamptz)

-- name: processes_insert
{new_processes};

-- name: outbox_insert
{new_outbox_rows};

-- name: dead_letter_insert
-- Only through stepline.deadletters.record, which bounds the body and headers first.
INSERT INTO dead_letters (consumer, event_id, account_id, job_id, process_id, origin,
                          reason, headers, body, truncated)
VALUES (%(consumer)s, %(event_id)s, %(account_id)s, %(job_id)s, %(process_id)s,
        %(origin)s, %(reason)s, %(headers)s, %(body)s, %(truncated)s)
ON CONFLICT (consumer, event_id) WHERE event_id IS NOT NULL DO NOTHING;

-- name: jobs_finish
-- Run after the commit that finished a process, never inside it: the last process to
-- commit is sure to see every other one committed, so exactly one check ends each job.
-- Many jobs at once, locked in one order so that two checkers never deadlock.
UPDATE jobs j
SET status = CASE WHEN EXISTS (SELECT 1 FROM processes
                               WHERE job_id = j.id AND status = 'failed')
                  THEN 'failed' ELSE 'succeeded' END,
    finished_at = now()
WHERE j.id IN (SELECT id FROM jobs WHERE id = ANY(%(job_ids)s) AND status = 'running'
               ORDER BY id FOR UPDATE)
  AND j.status = 'running'
  AND NOT EXISTS (SELECT 1 FROM processes
                  WHERE job_id = j.id AND status IN ('pending', 'running'))
RETURNING j.id, j.status, j.parent_process_id;

-- name: jobs_finish_stale
-- The same end, for running jobs whose last check was lost to a crash.
UPDATE jobs j
SET status = CASE WHEN EXISTS (SELECT 1 FROM processes p
                               WHERE p.job_id = j.id AND p.status = 'failed')
                  THEN 'failed' ELSE 'succeeded' END,
    finished_at = now()
WHERE j.status = 'running' AND j.created_at < now() - make_interval(secs => %(min_age_s)s)
  AND NOT EXISTS (SELECT 1 FROM processes p
                  WHERE p.job_id = j.id AND p.status IN ('pending', 'running'))
RETURNING j.id, j.status, j.parent_process_id;

-- name: version_steps
-- One immutable version's steps, in order, with what the version says of itself.
SELECT s.id, s.key, s.name, s.function, s.config, s.next_key, s.output, s.retry,
       s.workflow_id, s.workflow_version_id, v.version, v.entry_step_key
FROM steps s JOIN workflow_versions v ON v.id = s.workflow_version_id
WHERE v.workflow_id = %(workflow_id)s AND v.version = %(version)s
ORDER BY s.position;

-- name: connection_by_name
SELECT kind, config, secret FROM connections
WHERE account_id = %(account_id)s AND name = %(name)s;

-- fragment: claimable
-- (an outbox row's own columns) it may be claimed now: due, held by no live lease, for a
-- destination the transport can take more for
AND not_before <= now() AND (claimed_until IS NULL OR claimed_until < now())
AND destination <> ALL(%(full)s::text[])

-- name: outbox_claim
-- A batch of due rows for this relay, leased so that several relays share the work
-- and a crashed relay's rows come back when the lease runs out — taken fairly: the
-- accounts with pending rows (found by a skip scan of ix_outbox_fair, one probe each,
-- at most a batch of them from a point the relay picks at random, so that with more
-- accounts than a batch holds none waits behind the others) each get an equal share of
-- the batch, its oldest due rows first: one account's fan-out of a million items cannot
-- hold another's next step behind it. Rows of a
-- destination the transport reports full (its queue's backlog) wait where they are. A
-- batch holds at most max_bytes of data, and a row over row_max comes without its data.
WITH RECURSIVE after_start AS (
    -- the accounts after a point the relay picks at random, at most one batch of them
    (SELECT account_id, 1 AS n FROM outbox
     WHERE status = 'pending' AND account_id > %(start)s::uuid {claimable}
     ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT o.account_id FROM outbox o
            WHERE o.status = 'pending' AND o.account_id > a.account_id {claimable}
            ORDER BY o.account_id LIMIT 1), a.n + 1
    FROM after_start a WHERE a.account_id IS NOT NULL AND a.n < %(limit)s),
from_first AS (
    -- and, round the end, those from the first on
    (SELECT account_id, 1 AS n FROM outbox
     WHERE status = 'pending' AND account_id IS NOT NULL AND account_id <= %(start)s::uuid
       {claimable}
     ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT o.account_id FROM outbox o
            WHERE o.status = 'pending' AND o.account_id > f.account_id
              AND o.account_id <= %(start)s::uuid {claimable}
            ORDER BY o.account_id LIMIT 1), f.n + 1
    FROM from_first f WHERE f.account_id IS NOT NULL AND f.n < %(limit)s),
lanes AS (
    SELECT account_id FROM (SELECT account_id, 0 AS round, n FROM after_start
                            UNION ALL SELECT account_id, 1, n FROM from_first) found
    WHERE account_id IS NOT NULL ORDER BY round, n LIMIT %(limit)s),
share AS (
    SELECT greatest(1, ceil(%(limit)s::float8 / greatest(count(*), 1)))::int AS n
    FROM lanes WHERE account_id IS NOT NULL),
fair AS (
    SELECT lanes.account_id AS lane, picked.id, picked.not_before, picked.size
    FROM lanes CROSS JOIN share
    CROSS JOIN LATERAL (
        SELECT o.id, o.not_before, pg_column_size(o.data) AS size
        FROM outbox o
        WHERE o.status = 'pending' AND o.account_id = lanes.account_id
          AND o.not_before <= now()
          AND (o.claimed_until IS NULL OR o.claimed_until < now())
          AND o.destination <> ALL(%(full)s::text[])
        ORDER BY o.not_before, o.id
        LIMIT share.n
        FOR UPDATE SKIP LOCKED) picked
    WHERE lanes.account_id IS NOT NULL),
unnamed AS (
    -- rows written before outbox rows named their account: one more lane
    SELECT NULL::uuid AS lane, o.id, o.not_before, pg_column_size(o.data) AS size FROM outbox o
    WHERE o.status = 'pending' AND o.account_id IS NULL AND o.not_before <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      AND o.destination <> ALL(%(full)s::text[])
    ORDER BY o.not_before, o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED),
due AS (SELECT * FROM fair UNION ALL SELECT * FROM unnamed),
ranked AS (
    SELECT id, not_before, size,
           row_number() OVER (PARTITION BY lane ORDER BY not_before, id) AS rank
    FROM due),
batch AS (
    -- no more than max_bytes of data a batch (its first row whatever its size)
    SELECT id FROM (SELECT id, rank, not_before,
                           sum(size) OVER (ORDER BY rank, not_before, id) - size AS before
                    FROM ranked ORDER BY rank, not_before, id LIMIT %(limit)s) sized
    WHERE before < %(max_bytes)s)
UPDATE outbox o
SET claimed_until = now() + make_interval(secs => %(lease_s)s),
    claimed_by = %(relay)s, attempts = o.attempts + 1
FROM batch
WHERE o.id = batch.id
RETURNING o.id, o.event_id, o.destination, o.attributes,
          -- a row too large to carry is told by its size, not loaded
          CASE WHEN pg_column_size(o.data) <= %(row_max)s THEN o.data END AS data,
          pg_column_size(o.data) AS size, o.attempts, o.job_id, o.process_id,
          -- where a function registered from outside, or a service, is served
          (SELECT f.endpoint FROM functions f WHERE f.name = o.destination) AS endpoint;

-- name: outbox_mark_sent
UPDATE outbox SET status = 'sent', sent_at = now(), claimed_until = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND status = 'pending';

-- name: outbox_mark_retry
-- Back to the queue after a failed delivery, with the error and when to try again.
UPDATE outbox SET claimed_until = NULL, last_error = r.error,
       not_before = now() + make_interval(secs => r.delay_s)
FROM jsonb_to_recordset(%(rows)s) AS r(id bigint, error text, delay_s float8)
WHERE outbox.id = r.id AND outbox.status = 'pending';

-- name: outbox_mark_dead
UPDATE outbox SET status = 'dead', claimed_until = NULL, last_error = %(error)s
WHERE id = %(id)s AND status = 'pending';

-- name: outbox_next_due
-- How long the relay may sleep when nothing is due.
SELECT extract(epoch FROM min(greatest(not_before, coalesce(claimed_until, not_before))) - now())
FROM outbox WHERE status = 'pending';

-- name: outbox_backlog
-- What waits in the outbox, read at scrape time: the rows pending, the age of the
-- oldest, and how long the oldest row already due has waited past its time (a step's
-- scheduled retry is pending for as long as its backoff, without being late).
SELECT count(*)::float8 AS pending,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
           AS oldest_pending_age_s,
       coalesce(extract(epoch FROM now() - min(not_before) FILTER (WHERE not_before <= now())),
                0)::float8 AS oldest_due_age_s
FROM outbox WHERE status = 'pending';

-- name: job_start
-- A job's start in one statement: the job (nothing at all when a start with the same
-- idempotency key made it already), the trigger's entry process when the entry is a
-- trigger (done the moment the job starts, priced as any process), and the first
-- pending processes with their outbox rows. A service call's job carries the service,
-- the caller and the call's price: its meter. Foreign keys are checked at the end of
-- the statement.
WITH job AS (
    INSERT INTO jobs (id, account_id, workflow_id, workflow_version_id, version, trigger,
                      payload, idempotency_key, parent_process_id, depth, user_id,
                      service_id, caller_account_id, call_price, trigger_data)
    VALUES (%(id)s, %(account_id)s, %(workflow_id)s, %(workflow_version_id)s, %(version)s,
            %(trigger)s, %(payload)s, %(idempotency_key)s, %(parent_process_id)s,
            %(depth)s, %(user_id)s, %(service_id)s, %(caller_account_id)s, %(call_price)s,
            %(trigger_data)s)
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, created_at),
entry AS (
    INSERT INTO processes (id, job_id, account_id, workflow_version_id, step_id, step_key,
                           function, status, attempt, input, output, started_at, finished_at,
                           unit_price)
    SELECT r.id, job.id, %(account_id)s, %(workflow_version_id)s, r.step_id, r.step_key,
           r.function, 'succeeded', 1, %(payload)s, %(payload)s, now(), now(),
           (SELECT f.price_per_process FROM functions f WHERE f.name = r.function)
    FROM job, jsonb_to_recordset(%(entry)s) AS r(id uuid, step_id uuid, step_key text,
                                                 function text)
    RETURNING 1),
first_processes AS (
    {new_processes}
    WHERE EXISTS (SELECT 1 FROM job)
    RETURNING 1),
first_rows AS (
    {new_outbox_rows}
    WHERE EXISTS (SELECT 1 FROM job)
    RETURNING 1)
SELECT (SELECT id FROM job) AS id, (SELECT created_at FROM job) AS created_at,
       (SELECT count(*) FROM entry) AS entry,
       (SELECT count(*) FROM first_rows) AS sent;

-- name: job_by_idempotency_key
SELECT id FROM jobs WHERE workflow_id = %(workflow_id)s AND idempotency_key = %(idempotency_key)s;

-- name: job_cancel
-- A running job and every running job it started (Workflow.call and service children,
-- theirs, and so on), cancelled in one statement with their pending and running
-- processes and their undelivered messages. The jobs cancelled come back, each with the
-- process that waits for it, if any.
WITH RECURSIVE tree AS (
    SELECT id FROM jobs WHERE id = %(job_id)s AND status = 'running'
    UNION
    SELECT child.id FROM tree
    JOIN processes p ON p.job_id = tree.id
    JOIN jobs child ON child.parent_process_id = p.id AND child.status = 'running'),
cancelled AS (
    UPDATE jobs SET status = 'cancelled', finished_at = now()
    WHERE id IN (SELECT id FROM tree)
    RETURNING id, parent_process_id),
processes_cancelled AS (
    UPDATE processes SET status = 'cancelled', finished_at = now()
    WHERE job_id IN (SELECT id FROM tree) AND status IN ('pending', 'running')),
messages_cancelled AS (
    UPDATE outbox SET status = 'cancelled', claimed_until = NULL
    WHERE job_id IN (SELECT id FROM tree) AND status = 'pending')
SELECT id, parent_process_id FROM cancelled;

-- name: process_fail_by_transport
-- The transport gave up on a message: its process fails (unless it already ended).
UPDATE processes
SET status = 'failed', error = %(error)s, finished_at = now()
WHERE id = %(process_id)s AND status IN ('pending', 'running')
RETURNING job_id;

-- name: start_target
-- What a start reads, in one row: the workflow (by a trigger step of its current version,
-- or by id within an account), the step (the trigger step, or the entry), the current
-- version, and what admission needs of the workflow and its account.
WITH wanted AS (
    SELECT coalesce(%(workflow_id)s::uuid,
                    (SELECT workflow_id FROM steps WHERE id = %(step_id)s::uuid)) AS id)
SELECT w.id AS workflow_id, w.account_id, w.current_version AS version, v.entry_step_key,
       s.key AS step_key, s.function, s.config,
       (SELECT f.kind FROM functions f WHERE f.name = s.function) AS entry_kind,
       w.paused_at IS NOT NULL AS paused,
       w.blocked_at IS NOT NULL AS workflow_blocked, w.blocked_reason AS workflow_blocked_reason,
       a.blocked_at IS NOT NULL AS account_blocked, a.blocked_reason AS account_blocked_reason,
       a.monthly_quota,
       coalesce((SELECT processes FROM quota_usage q WHERE q.account_id = a.id
                 AND q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0)
           AS quota_used
FROM wanted
JOIN workflows w ON w.id = wanted.id AND w.deleted_at IS NULL
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
JOIN accounts a ON a.id = w.account_id
LEFT JOIN steps s ON s.workflow_version_id = v.id
     AND (s.id = %(step_id)s::uuid OR (%(step_id)s::uuid IS NULL AND s.key = v.entry_step_key))
WHERE %(account_id)s::uuid IS NULL OR w.account_id = %(account_id)s::uuid;

-- name: service_target
-- What a service call's start reads, in one row: the service by name (a live one first,
-- else the last unpublished one, to say so), the workflow version it pins, its entry
-- step, and what admission needs of the workflow and of the publisher's account.
SELECT sv.id AS service_id, sv.name AS service_name, sv.visibility, sv.input_schema,
       sv.price_per_call, sv.unpublished_at IS NOT NULL AS unpublished,
       w.id AS workflow_id, w.account_id, sv.version, v.entry_step_key,
       s.key AS step_key, s.function, s.config,
       (SELECT f.kind FROM functions f WHERE f.name = s.function) AS entry_kind,
       w.deleted_at IS NOT NULL AS workflow_deleted,
       w.paused_at IS NOT NULL AS paused,
       w.blocked_at IS NOT NULL AS workflow_blocked, w.blocked_reason AS workflow_blocked_reason,
       a.blocked_at IS NOT NULL AS account_blocked, a.blocked_reason AS account_blocked_reason,
       a.monthly_quota,
       coalesce((SELECT processes FROM quota_usage q WHERE q.account_id = a.id
                 AND q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0)
           AS quota_used
FROM services sv
JOIN workflows w ON w.id = sv.workflow_id
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = sv.version
JOIN accounts a ON a.id = w.account_id
LEFT JOIN steps s ON s.workflow_version_id = v.id AND s.key = v.entry_step_key
WHERE sv.name = %(name)s
ORDER BY sv.unpublished_at IS NULL DESC, sv.unpublished_at DESC
LIMIT 1;

-- name: processes_this_month
-- What a monthly quota counts: the account's processes since :since (the month's start,
-- UTC), counting no further than :cap, plus those of days already pruned into usage_daily.
SELECT (SELECT count(*) FROM (SELECT 1 FROM processes
                              WHERE account_id = %(account_id)s AND created_at >= %(since)s
                              LIMIT %(cap)s) counted)
     + (SELECT coalesce(sum(processes), 0) FROM usage_daily
        WHERE account_id = %(account_id)s AND day >= %(since)s::date) AS n;

-- name: quota_take
-- Count new processes against the account's monthly quota, if it has one and they fit.
-- The row lock of the update makes concurrent creations of one account queue until the
-- first commits, and each then sees the count the other left: together they never
-- overshoot. No quota: nothing counted, no lock. `taken` is null when they do not fit, or
-- when the month has no count yet (`used` null too: quota_reset makes it, then try again).
WITH account AS (SELECT monthly_quota FROM accounts WHERE id = %(account_id)s),
taken AS (
    UPDATE quota_usage q SET processes = q.processes + %(n)s
    FROM account
    WHERE q.account_id = %(account_id)s
      AND q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
      AND account.monthly_quota IS NOT NULL AND q.processes + %(n)s <= account.monthly_quota
    RETURNING q.processes)
SELECT (SELECT monthly_quota FROM account) AS quota, (SELECT processes FROM taken) AS taken,
       (SELECT processes FROM quota_usage
        WHERE account_id = %(account_id)s
          AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date) AS used;

-- name: quota_reset
-- The account's count this month as it really is (processes, and days already rolled up
-- into usage_daily): the month's first count, or a quota just set or changed; never lower
-- than what is counted already.
INSERT INTO quota_usage AS q (account_id, month, processes)
SELECT %(account_id)s, date_trunc('month', now() AT TIME ZONE 'UTC')::date,
       (SELECT count(*) FROM processes WHERE account_id = %(account_id)s
          AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
     + (SELECT coalesce(sum(processes), 0) FROM usage_daily WHERE account_id = %(account_id)s
          AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date)
ON CONFLICT (account_id, month) DO UPDATE
SET processes = greatest(q.processes, excluded.processes);

-- name: usage_refused
INSERT INTO usage_daily (account_id, day, refused) VALUES (%(account_id)s, %(day)s, 1)
ON CONFLICT (account_id, day) DO UPDATE SET refused = usage_daily.refused + 1;

-- name: process_packet
-- What it takes to deliver a process again (a Workflow.call parent whose child ended).
SELECT p.id, p.status, p.input, p.attempt, p.parent_id, p.step_id, p.step_key, p.function,
       p.account_id, j.id AS job_id, j.workflow_id, j.version, j.user_id, j.trigger_data
FROM processes p JOIN jobs j ON j.id = p.job_id
WHERE p.id = %(process_id)s;

-- name: process_wait
-- The handler started something it waits for (a child job): the process stays running.
UPDATE processes SET logs = coalesce(logs, '[]'::jsonb) || %(logs)s
WHERE id = %(process_id)s AND status IN ('pending', 'running');

-- name: child_job
-- The child job of the process's current run: a process retried through the API starts
-- a new run (its started_at set again), which must not read the last run's child.
SELECT j.id, j.status FROM jobs j JOIN processes p ON p.id = j.parent_process_id
WHERE p.id = %(process_id)s AND j.created_at >= p.started_at
ORDER BY j.created_at DESC LIMIT 1;

-- name: account_is_operator
SELECT is_operator FROM accounts WHERE id = %(account_id)s;

-- name: call_context
-- What a child job's start needs of its calling process: how deep its job is nested,
-- and when this run of the process began (part of the child's idempotency key).
SELECT j.depth, p.started_at FROM processes p JOIN jobs j ON j.id = p.job_id
WHERE p.id = %(process_id)s;

-- name: job_result
-- What a finished job produced: the outputs of its last steps (processes with no child).
SELECT p.output FROM processes p
WHERE p.job_id = %(job_id)s AND p.status = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM processes c WHERE c.parent_id = p.id)
ORDER BY p.created_at, p.id;

-- name: ledger_create
-- The ledger_ queries run on a CUSTOMER's PostgreSQL, never on the platform's: the
-- effect ledger (stepline.ledger), one row per effect made, keyed by the delivery's
-- stable key. Here: the schema and table on first use, by whoever may create them. The advisory lock
-- makes two first uses at once wait for each other instead of failing on the catalog's
-- unique keys; nothing is created that exists, so a schema a DBA made is enough (the
-- privilege to CREATE SCHEMA is checked before IF NOT EXISTS is).
DO $ledger$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('stepline.effect_ledger'));
    IF to_regnamespace('stepline') IS NULL THEN
        CREATE SCHEMA stepline;
    END IF;
    IF to_regclass('stepline.effect_ledger') IS NULL THEN
        CREATE TABLE stepline.effect_ledger (
            key text PRIMARY KEY,
            result jsonb,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
        -- BRIN: the rows arrive in time order, and pruning by age is all it serves
        CREATE INDEX effect_ledger_recorded_at ON stepline.effect_ledger
            USING brin (recorded_at);
        COMMENT ON TABLE stepline.effect_ledger IS
            'Stepline''s effect ledger: one row per write a workflow step made here, so a '
            'redelivered step does not write again. Rows are pruned by age.';
    END IF;
END
$ledger$;

-- name: ledger_lookup
SELECT result FROM stepline.effect_ledger WHERE key = %(key)s;

-- name: ledger_wrote
-- Whether this transaction changed anything: PostgreSQL gives a transaction an id at
-- its first write (a row inserted, updated, deleted or locked, DDL), never for a read.
SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS wrote;

-- name: ledger_record
-- The effect's row, only if its transaction changed anything (ledger_wrote's test, read
-- once before this insert takes an id: a read records nothing). No ON CONFLICT: a row
-- of the same key means another run of the effect committed first (this one waited
-- here for that one to end), and this one must roll back.
INSERT INTO stepline.effect_ledger (key, result)
SELECT %(key)s, %(result)s WHERE pg_current_xact_id_if_assigned() IS NOT NULL;

-- name: ledger_prune
DELETE FROM stepline.effect_ledger WHERE key IN (
    SELECT key FROM stepline.effect_ledger
    WHERE recorded_at < now() - %(older_than)s
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED);

-- Triggers that reach a source of their own (Queue, Email, Sms): their health, their
-- events, and the step a poller works for. Written only by stepline.lifecycle.triggers.

-- fragment: trigger_step_ids
-- The step's workflow and account, for a health row made by its first report or event.
SELECT s.id, s.workflow_id, w.account_id
FROM steps s JOIN workflows w ON w.id = s.workflow_id
WHERE s.id = %(step_id)s
LIMIT 1

-- name: trigger_report
-- A consumer or poller says how its source is. ``failing_since`` holds across a run of
-- failures and is cleared by the first success; ``checked_at`` is this report, which
-- readers hold against the trigger's bound.
INSERT INTO trigger_health AS h (step_id, workflow_id, account_id, state, error,
                                 failing_since, checked_at, unacked)
SELECT ids.id, ids.workflow_id, ids.account_id, %(state)s::text, %(error)s,
       CASE WHEN %(state)s::text = 'failing' THEN now() END, now(), %(unacked)s
FROM ({trigger_step_ids}) ids
ON CONFLICT (step_id) DO UPDATE
SET state = excluded.state, error = excluded.error,
    failing_since = CASE WHEN excluded.state = 'failing'
                         THEN coalesce(h.failing_since, now()) END,
    checked_at = now(), unacked = excluded.unacked;

-- name: trigger_event
-- One event of a trigger, counted in the transaction that acted on it (its job's start,
-- its dead letter, or the finding that it came before), with how far the source has
-- been read (a poller's cursor) when that moved too.
INSERT INTO trigger_health AS h (step_id, workflow_id, account_id, state, last_event_at,
                                 started, duplicates, dead_letters, cursor)
SELECT ids.id, ids.workflow_id, ids.account_id, 'connected', now(), %(started)s,
       %(duplicates)s, %(dead_letters)s, %(cursor)s
FROM ({trigger_step_ids}) ids
ON CONFLICT (step_id) DO UPDATE
SET last_event_at = now(), started = h.started + excluded.started,
    duplicates = h.duplicates + excluded.duplicates,
    dead_letters = h.dead_letters + excluded.dead_letters,
    cursor = coalesce(excluded.cursor, h.cursor);

-- name: trigger_cursor
-- A poller moves its cursor past what it found nothing new in (a changed UIDVALIDITY).
UPDATE trigger_health SET cursor = %(cursor)s WHERE step_id = %(step_id)s;

-- name: trigger_step
-- What a trigger's consumer or poller needs of its step: the current version's entry
-- step with that id and function, its account and config, whether anything may start
-- now, and its cursor. No row: the step is no longer its workflow's live entry.
SELECT s.id AS step_id, s.workflow_id, w.account_id, s.config, h.cursor,
       (w.paused_at IS NOT NULL OR w.blocked_at IS NOT NULL OR a.blocked_at IS NOT NULL)
           AS stopped
FROM steps s
JOIN workflows w ON w.id = s.workflow_id AND w.deleted_at IS NULL
JOIN workflow_versions v ON v.id = s.workflow_version_id AND v.workflow_id = w.id
     AND v.version = w.current_version AND v.entry_step_key = s.key
JOIN accounts a ON a.id = w.account_id
LEFT JOIN trigger_health h ON h.step_id = s.id
WHERE s.id = %(step_id)s AND s.function = %(function)s;

-- name: trigger_health
-- Every live trigger step of the functions asked for (the entry of its workflow's current
-- version) with its health row if it has one, narrowed to one step, some workflows or
-- one account when asked; ``stopped``: nothing may start (paused or blocked).
SELECT s.id AS step_id, s.function, s.config, w.id AS workflow_id, w.account_id,
       v.created_at AS version_created_at,
       (w.paused_at IS NOT NULL OR w.blocked_at IS NOT NULL OR a.blocked_at IS NOT NULL)
           AS stopped,
       h.step_id IS NOT NULL AS reported, h.state, h.error, h.failing_since, h.checked_at,
       h.last_event_at, h.started, h.duplicates, h.dead_letters, h.unacked
FROM workflows w
JOIN accounts a ON a.id = w.account_id
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
JOIN steps s ON s.workflow_version_id = v.id AND s.key = v.entry_step_key
LEFT JOIN trigger_health h ON h.step_id = s.id
WHERE w.deleted_at IS NULL AND s.function = ANY(%(functions)s)
  AND (%(step_id)s::uuid IS NULL OR s.id = %(step_id)s::uuid)
  AND (%(workflow_ids)s::uuid[] IS NULL OR w.id = ANY(%(workflow_ids)s::uuid[]))
  AND (%(account_id)s::uuid IS NULL OR w.account_id = %(account_id)s::uuid)
ORDER BY s.id;

-- name: trigger_seen
-- Keys of a trigger's event recorded as consumed (an Email's UIDVALIDITY + UID and its
-- Message-ID), in the transaction that starts its job: the keys already there come back.
WITH wanted AS (SELECT unnest(%(keys)s::text[]) AS key),
added AS (INSERT INTO inbox (consumer, event_id)
          SELECT %(consumer)s, key FROM wanted
          ON CONFLICT DO NOTHING
          RETURNING event_id)
SELECT key FROM wanted WHERE key NOT IN (SELECT event_id FROM added);

-- name: queue_sources
-- The Queue steps that should be consumed now: the entry of a live workflow's current
-- version, neither it nor its account paused or blocked (messages wait in the queue
-- meanwhile), with the connection its config names (none, or another kind: a problem
-- its health shows).
SELECT s.id AS step_id, s.workflow_id, w.account_id, s.config, c.kind AS connection_kind,
       c.config AS connection_config, c.secret AS connection_secret
FROM workflows w
JOIN accounts a ON a.id = w.account_id AND a.blocked_at IS NULL
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
JOIN steps s ON s.workflow_version_id = v.id AND s.key = v.entry_step_key
LEFT JOIN connections c ON c.account_id = w.account_id AND c.name = s.config->>'connection'
WHERE w.deleted_at IS NULL AND w.paused_at IS NULL AND w.blocked_at IS NULL
  AND s.function = 'Queue'
ORDER BY s.id;
