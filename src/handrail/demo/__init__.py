"""The `handrail demo`: a contract-renewal agent, crashed and resumed on a fresh store.

- :mod:`handrail.demo.contract_renewal`: the App (tools and workflow);
- :mod:`handrail.demo.planner`: the scripted planner that stands in for an LLM;
- :mod:`handrail.demo.systems`: the pretend CRM, outbox and contract repository (files);
- :mod:`handrail.demo.driver`: the worker process the demo starts (and kills);
- :mod:`handrail.demo.runner`: the story, phase by phase, and the verdict.
"""
