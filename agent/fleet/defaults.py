"""Fleet defaults the command line shows in its help, apart from the code that uses them: `--help`
builds every command's parser, and must not import the board's state rules and store for it
(about 0.4 MiB RSS)."""

DAY_MS = 86_400_000
SILENT_AFTER_S = 120.0  # a node not heard from for this long shows silent
RETENTION_MS = 7 * DAY_MS  # verified messages; agent.trust.verify's default max age is 7 days
HISTORY_MS = 90 * DAY_MS  # transitions, episodes, patch and posture history
