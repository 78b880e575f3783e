"""The pipeline: the stages a file's job goes through, each owning one state.

    watch/    detect and settle: a new version of a file becomes `settling`, then `queued`
    adopt     a file older than the ledger, found in Wistia already, is not uploaded again:
              `queued` -> `processing` (-> `finishing`), or `failed` when several could be it
    upload    claim, reconcile after a crash, send: `queued` -> `uploading` -> `processing`
    probe     the account-wide hold's probes: a look at the account, then one small upload
    versions  what a new version replaces in place, chosen before its upload
    projects  a folder's Wistia project, found or made once (project_from_folder)
    poll      ask Wistia until the media is ready: `processing` -> `finishing`
    finish/   the swap, sidecars, the partial version, the file's fate, the receipt: -> `done`
    held      a job waiting on its own problem, rechecked until fixed: `held` -> where it was
    resync    sidecars changed after done reach the done media (the job stays `done`)
    loop      what every stage shares: the guard around each job's step, the one stage loop

Each arrow is one ledger transition with one event row; the stages never call each other.
What it does not own: what an outcome means (core.outcomes decides, the ledger writes it),
how Wistia is talked to (wistia), or the untrusted folder's safe reading (folder).
"""
