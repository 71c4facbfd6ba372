"""The `handrail demo`: a contract-renewal agent meets a flaky service, a concurrent edit,
approval gates (one auto-approved at its deadline, one approved by a named human), a
missing permission and a SIGKILL, on a fresh store, and is checked.

- :mod:`handrail.demo.contract_renewal`: the App (tools and workflow);
- :mod:`handrail.demo.planner`: the scripted planner that stands in for an LLM;
- :mod:`handrail.demo.systems`: the pretend contract repository, vendor status service, CRM
  and outbox (files; :mod:`~handrail.demo.files` writes them durably), and the scripted
  faults; :mod:`~handrail.demo.service_errors`: how those services fail;
- :mod:`handrail.demo.driver`: the worker process the demo starts (and kills);
- :mod:`handrail.demo.runner`: the story, phase by phase (:mod:`~handrail.demo.harness`:
  its files, output and worker processes);
- :mod:`handrail.demo.findings`: each story read back from the journal
  (:mod:`~handrail.demo.evidence`) and the systems' files, and the verdict.
"""
