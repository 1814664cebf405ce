"""The analysts' side: read the answers of a human experiment (a database URL or the CSV
export of docs/contracts.md §6) into pandas and compute what the paper reports:
accuracy by subset x condition x population with machine rows (Table 2b), agreement
between participants (Fig. 5a/5b), position bias, per-participant checks and response
times; `report` writes them all as CSV tables, PNG figures and one self-contained HTML.

Never imports torch, flask or the server's models: it reads plain SQL or CSV.
"""

N_CANDIDATES = 5
