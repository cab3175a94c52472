"""Benchmark: tickets through two matching replicas on a real broker, then the logs checked.

    .venv/bin/python -m bench.matching_replay [--tickets 100000] [--rate 400] [--learners 5000]
        [--max-open 1000] [--ttl 30] [--seed 1] [--rebuild] [--keep]

Starts an Apache Kafka node (one KRaft broker and controller, as ``make run`` starts it) and two
matching replicas (``python -m services.matching``, instances ``a`` and ``b``, each with its own
state directory, both on one SQLite store, default expansions, time to live ``--ttl``), then acts as
the clients and the sessions service would, straight on the broker, in a closed loop:

- a population of ``--learners`` learners claims a self-level in every catalog skill
  (SkillClaimed on ``lemma.passport.v1``; beginner 30%, intermediate 35%, advanced 25%, expert
  10%), with a specialty preference in 70% of cases and a format in 60%;
- tickets: MatchRequested on ``lemma.matching.v1`` keyed by skill (what the HTTP route
  publishes), ``--rate`` per second, each for a learner who is free in the skill (no open
  ticket, no unfinished session there); at most ``--max-open`` tickets open at once;
- 10% of tickets are cancelled 0-``--cancel-within`` s after the request (MatchCancelled,
  published whatever the driver has seen: it races the matcher on purpose);
- the driver follows ``lemma.matching.v1`` and reads it with the log rule (``referee``);
  for each effective MatchFound, after a session of ``--session-s`` (uniform 0.5-1.5 x), it
  publishes on ``lemma.sessions.v1`` (keyed by session id = match id) a SessionAbandoned with a
  no-show (5% of matches: one of the two is absent, the other abandons, a claim the absent one
  could contest for 48 h) or a SessionCompleted and the partner's SessionConfirmed.
  Learners whose session ended are free again, except the one a no-show left: the matcher
  puts them back in the queue (a requeue MatchRequested), and that ticket runs its course;
- after the last ticket, tickets still waiting expire after ``--ttl`` s; the run ends when every
  learner is free again.

Then it reads the whole of ``lemma.matching.v1``, ``lemma.sessions.v1`` and the dead-letter
topic and checks: the log folded partition by partition with the service's projection
(``MatchingProjection`` via ``fold_events``) and with the bench's own reading of the rule agree,
and every ticket ends in exactly one terminal state (matched, cancelled or expired), with one
effective terminal event; every effective MatchFound named two waiting tickets of its learners;
no learner is ever in two open sessions of a skill (effective matches and session ends, in event
time order, per learner and skill); every no-show requeued the partner once; nothing was
dead-lettered; the replicas' one store holds the same ticket states as the log. With
``--rebuild``, the replicas stop and a third process folds the whole log into an empty store,
which must reach the same tickets.

Figures: MatchFound published vs effective (void ones lost a race), cancels that lost to a match,
wall time, tickets per second through the system, match latency (the effective MatchRequested's
event time to the MatchFound's event time). The last output line is one JSON object with the
figures, ``checks``, ``meets_targets`` and the target.

The modules, by concern:

- ``population``: the learners, their levels and preferences per skill (``Slot``);
- ``matchers``: the matching processes and what their SQLite stores hold;
- ``topics``: reading a topic back whole, each partition's records once and in order;
- ``referee``: the bench's own reading of the ticket log rule, and the walk of sessions;
- ``driver``: the clients and the sessions service, live on the broker (``drive``);
- ``verification``: the logs read back and checked, the stores against them, the rebuild;
- ``report``: the figures, the printed report and the target;
- ``cli``: the options and the run from broker start to the JSON line.
"""
