"""Kyverno ``verifyImages`` policies: typed models (:mod:`core.policy.models`), the loader with Kyverno's
validation (:mod:`core.policy.loader`: ``load_policies``, ``load_policy_text``, ``policy_paths_from_env``,
``PolicySet``) and the table of what sigward implements (:mod:`core.policy.capabilities`).

Nothing is imported here, so importing the models does not pull in the YAML and key-parsing dependencies.
"""
