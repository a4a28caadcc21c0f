"""Formal harnesses: each wraps one component with free inputs (`AnySeq`), the environment's rules as
`Assume`s and the component's properties as `Assert`s; `hw.flow.formal.prove` runs them through SymbiYosys."""
