-- The hot paths of Stepline as named SQL: the step transaction (inbox, process,
-- outbox), the job's end, and the relay's claim. Parameters are psycopg %(name)s.
-- A `-- fragment:` is a piece written once and used as {name} inside queries.

-- name: delivery_begin
-- The start of a delivery in one round trip: whether this consumer has seen the event,
-- the process and its job as they were, and the process marked running when it may run.
-- The mark commits without waiting for the WAL flush: lost in a crash, it only leaves
-- the process shown pending until the redelivery marks it again.
WITH soft AS (SELECT set_config('synchronous_commit', 'off', true) AS done),
seen AS (SELECT EXISTS (SELECT 1 FROM inbox
                        WHERE consumer = %(consumer)s AND event_id = %(event_id)s) AS seen),
state AS (SELECT p.status, p.account_id, j.status AS job_status
          FROM processes p JOIN jobs j ON j.id = p.job_id
          WHERE p.id = %(process_id)s),
began AS (UPDATE processes p
          SET status = 'running', attempt = %(attempt)s,
              started_at = coalesce(p.started_at, now())
          FROM soft, seen, state
          WHERE p.id = %(process_id)s AND p.status IN ('pending', 'running')
            AND soft.done IS NOT NULL AND NOT seen.seen
            AND state.account_id = %(account_id)s AND state.job_status <> 'cancelled'
          RETURNING 1)
SELECT seen.seen, state.status, state.account_id, state.job_status,
       EXISTS (SELECT 1 FROM began) AS began
FROM seen LEFT JOIN state ON true;

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

-- name: step_succeed
-- A step's success in one statement, so one round trip and, on a connection in
-- autocommit, one transaction: the inbox row that makes the delivery count, the
-- process's result, its next processes and their outbox rows. Nothing after the inbox
-- row is written when another delivery of the event counted first, and no next step
-- when the process was cancelled meanwhile. (Foreign keys are checked at the end of
-- the statement, when the new processes exist.)
WITH counted AS (
    INSERT INTO inbox (consumer, event_id, process_id)
    VALUES (%(consumer)s, %(event_id)s, %(process_id)s)
    ON CONFLICT DO NOTHING
    RETURNING 1),
done AS (
    UPDATE processes
    SET status = 'succeeded', output = %(output)s,
        logs = coalesce(logs, '[]'::jsonb) || %(logs)s, error = NULL, finished_at = now()
    WHERE id = %(process_id)s AND status IN ('pending', 'running')
      AND EXISTS (SELECT 1 FROM counted)
    RETURNING 1),
next_processes AS (
    {new_processes}
    WHERE EXISTS (SELECT 1 FROM done)
    RETURNING 1),
next_rows AS (
    {new_outbox_rows}
    WHERE EXISTS (SELECT 1 FROM done)
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM counted) AS counted,
       (SELECT count(*) FROM next_processes) AS processes,
       (SELECT count(*) FROM next_rows) AS sent;

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
-- trip however many. Written once, used by every query that creates processes.
INSERT INTO processes (id, job_id, account_id, workflow_version_id, step_id, step_key,
                       function, parent_id, input)
SELECT r.id, r.job_id, r.account_id, r.workflow_version_id, r.step_id, r.step_key,
       r.function, r.parent_id, r.input
FROM jsonb_to_recordset(%(processes)s) AS r(id uuid, job_id uuid, account_id uuid,
     workflow_version_id uuid, step_id uuid, step_key text, function text,
     parent_id uuid, input jsonb)

-- fragment: new_outbox_rows
-- Outbox rows from a JSON array of rows (messages.outbox_row makes them); a row without
-- not_before is due at once.
INSERT INTO outbox (event_id, destination, job_id, process_id, attributes, data, not_before)
SELECT r.event_id, r.destination, r.job_id, r.process_id, r.attributes, r.data,
       coalesce(r.not_before, now())
FROM jsonb_to_recordset(%(rows)s) AS r(event_id uuid, destination text, job_id uuid,
     process_id uuid, attributes jsonb, data jsonb, not_before timestamptz)

-- name: processes_insert
{new_processes};

-- name: outbox_insert
{new_outbox_rows};

-- name: dead_letter_insert
INSERT INTO dead_letters (consumer, event_id, account_id, job_id, process_id, origin,
                          reason, headers, body)
VALUES (%(consumer)s, %(event_id)s, %(account_id)s, %(job_id)s, %(process_id)s,
        %(origin)s, %(reason)s, %(headers)s, %(body)s)
ON CONFLICT (consumer, event_id) WHERE event_id IS NOT NULL DO NOTHING;

-- name: job_finish
-- Run after the commit that finished a process, never inside it: the last process to
-- commit is sure to see every other one committed, so exactly one check ends the job.
UPDATE jobs
SET status = CASE WHEN EXISTS (SELECT 1 FROM processes
                               WHERE job_id = %(job_id)s AND status = 'failed')
                  THEN 'failed' ELSE 'succeeded' END,
    finished_at = now()
WHERE id = %(job_id)s AND status = 'running'
  AND NOT EXISTS (SELECT 1 FROM processes
                  WHERE job_id = %(job_id)s AND status IN ('pending', 'running'))
RETURNING status, parent_process_id;

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

-- name: outbox_claim
-- A batch of due rows for this relay, leased so that several relays share the work
-- and a crashed relay's rows come back when the lease runs out.
UPDATE outbox o
SET claimed_until = now() + make_interval(secs => %(lease_s)s),
    claimed_by = %(relay)s, attempts = o.attempts + 1
FROM (SELECT id FROM outbox
      WHERE status = 'pending' AND not_before <= now()
        AND (claimed_until IS NULL OR claimed_until < now())
      ORDER BY not_before, id
      LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED) due
WHERE o.id = due.id
RETURNING o.id, o.event_id, o.destination, o.attributes, o.data, o.attempts, o.job_id,
          o.process_id;

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
-- trigger (done the moment the job starts), and the first pending processes with their
-- outbox rows. Foreign keys are checked at the end of the statement.
WITH job AS (
    INSERT INTO jobs (id, account_id, workflow_id, workflow_version_id, version, trigger,
                      payload, idempotency_key, parent_process_id, depth, user_id,
                      trigger_data)
    VALUES (%(id)s, %(account_id)s, %(workflow_id)s, %(workflow_version_id)s, %(version)s,
            %(trigger)s, %(payload)s, %(idempotency_key)s, %(parent_process_id)s,
            %(depth)s, %(user_id)s, %(trigger_data)s)
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, created_at),
entry AS (
    INSERT INTO processes (id, job_id, account_id, workflow_version_id, step_id, step_key,
                           function, status, attempt, input, output, started_at, finished_at)
    SELECT r.id, job.id, %(account_id)s, %(workflow_version_id)s, r.step_id, r.step_key,
           r.function, 'succeeded', 1, %(payload)s, %(payload)s, now(), now()
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
UPDATE jobs SET status = 'cancelled', finished_at = now()
WHERE id = %(job_id)s AND status = 'running'
RETURNING id;

-- name: job_cancel_processes
UPDATE processes SET status = 'cancelled', finished_at = now()
WHERE job_id = %(job_id)s AND status IN ('pending', 'running');

-- name: job_cancel_outbox
UPDATE outbox SET status = 'cancelled', claimed_until = NULL
WHERE job_id = %(job_id)s AND status = 'pending';

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
       w.paused_at IS NOT NULL AS paused,
       w.blocked_at IS NOT NULL AS workflow_blocked, w.blocked_reason AS workflow_blocked_reason,
       a.blocked_at IS NOT NULL AS account_blocked, a.blocked_reason AS account_blocked_reason,
       a.monthly_quota
FROM wanted
JOIN workflows w ON w.id = wanted.id AND w.deleted_at IS NULL
JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
JOIN accounts a ON a.id = w.account_id
LEFT JOIN steps s ON s.workflow_version_id = v.id
     AND (s.id = %(step_id)s::uuid OR (%(step_id)s::uuid IS NULL AND s.key = v.entry_step_key))
WHERE %(account_id)s::uuid IS NULL OR w.account_id = %(account_id)s::uuid;

-- name: processes_this_month
-- What a monthly quota counts: the account's processes since :since (the month's start,
-- UTC), counting no further than :cap, plus those of days already pruned into usage_daily.
SELECT (SELECT count(*) FROM (SELECT 1 FROM processes
                              WHERE account_id = %(account_id)s AND created_at >= %(since)s
                              LIMIT %(cap)s) counted)
     + (SELECT coalesce(sum(processes), 0) FROM usage_daily
        WHERE account_id = %(account_id)s AND day >= %(since)s::date) AS n;

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
SELECT id, status FROM jobs WHERE parent_process_id = %(process_id)s
ORDER BY created_at DESC LIMIT 1;

-- name: account_is_operator
SELECT is_operator FROM accounts WHERE id = %(account_id)s;

-- name: job_depth
SELECT depth FROM jobs WHERE id = %(job_id)s;

-- name: job_result
-- What a finished job produced: the outputs of its last steps (processes with no child).
SELECT p.output FROM processes p
WHERE p.job_id = %(job_id)s AND p.status = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM processes c WHERE c.parent_id = p.id)
ORDER BY p.created_at, p.id;

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
