"""Where manifests come from: a local mirror of the agents repository and its commits.

`mirror.Mirror` keeps a bare copy of the remote fresh with incremental fetches and
answers the questions the reconciler asks of git (which branches exist and where they
point, what a commit says, whether one commit contains another); `commit_tree.CommitTree`
lets the manifest loader read a commit straight from git objects.
"""
