"""The git source against real git: a bare remote, a clone that pushes, and our mirror.

Every scenario the reconciler meets in the field is played with real `git push`:
incremental fetches, force-pushes, deleted and renamed branches, a changed default
branch, a remote that disappears, and manifests read at exact commits.
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.source import errors, mirror, spare_trees
from controller.source.commit_tree import CommitTree
from controller.specs import loading
from controller.specs.tree import FilesystemTree, Tree, TreeError
from tests.gitrepos import Upstream, git

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents-repo"


@pytest.fixture
def source(upstream: Upstream, tmp_path: Path) -> Iterator[mirror.Mirror]:
    opened = mirror.Mirror(str(upstream.bare), tmp_path / "state" / "mirror.git")
    yield opened
    opened.close()


def copy_examples(destination: Path) -> None:
    shutil.copytree(EXAMPLES, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))


class TestFetch:
    def test_first_fetch_lists_every_branch_at_its_head(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        main = upstream.commit({"README.md": "hello\n"}, branch="main")
        feature = upstream.commit({"a.txt": "a\n"}, branch="feature")
        upstream.push("main", "feature")
        assert source.branches() == {}
        source.fetch()
        assert source.branches() == {"main": main, "feature": feature}
        assert all(len(sha) == 40 for sha in source.branches().values())

    def test_second_push_is_fetched_into_the_same_mirror(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        marker = source.path / "marker"
        marker.write_text("still here")
        inode = source.path.stat().st_ino
        first = source.branches()["main"]
        source.commit(first)  # starts gitpython's object reader before the next fetch

        second = upstream.commit({"a.txt": "2\n"}, branch="main")
        upstream.push("main")
        source.fetch()

        assert source.branches() == {"main": second}
        assert marker.read_text() == "still here"
        assert source.path.stat().st_ino == inode
        assert source.is_ancestor(first, second)
        assert source.tree(second).read("a.txt", 100) == b"2\n"

    def test_fetch_without_changes_keeps_everything(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        sha = upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        source.fetch()
        assert source.branches() == {"main": sha}
        assert source.default_branch() == "main"

    def test_force_push_rewrites_the_branch(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        base = upstream.commit({"a.txt": "base\n"}, branch="main")
        upstream.push("main")
        old = upstream.commit({"a.txt": "old\n"}, branch="topic")
        upstream.push("topic")
        source.fetch()
        assert source.branches()["topic"] == old

        git(upstream.work, "reset", "--quiet", "--hard", base)
        new = upstream.commit({"a.txt": "rewritten\n"}, branch="topic")
        upstream.push("topic", force=True)
        source.fetch()

        assert source.branches() == {"main": base, "topic": new}
        assert not source.is_ancestor(old, new)
        assert source.tree(new).read("a.txt", 100) == b"rewritten\n"

    def test_deleted_branch_disappears_and_new_branch_appears(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        main = upstream.commit({"a.txt": "1\n"}, branch="main")
        gone = upstream.commit({"b.txt": "1\n"}, branch="gone")
        upstream.push("main", "gone")
        source.fetch()
        assert set(source.branches()) == {"main", "gone"}

        upstream.push(":gone")
        fresh = upstream.commit({"c.txt": "1\n"}, branch="fresh")
        upstream.push("fresh")
        source.fetch()

        assert source.branches() == {"main": main, "fresh": fresh}
        assert gone != fresh

    def test_branch_names_with_slashes_and_unicode(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        names = ["main", "feature/deep/nested", "résumé/ünïcode-🚀", "release/v1.2"]
        shas = {name: upstream.commit({"f.txt": name}, branch=name) for name in names}
        upstream.push(*names)
        source.fetch()
        assert source.branches() == shas
        source.fetch()  # the no-change comparison must see the same names too
        assert source.branches() == shas

    def test_empty_remote_has_no_branches(self, source: mirror.Mirror) -> None:
        source.fetch()
        assert source.branches() == {}
        assert source.default_branch() is None

    def test_a_changed_url_is_used_by_the_next_fetch(
        self, upstream: Upstream, tmp_path: Path
    ) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        state = tmp_path / "state" / "mirror.git"
        mirror.Mirror(str(upstream.bare), state).fetch()

        moved = tmp_path / "moved.git"
        upstream.bare.rename(moved)
        git(upstream.work, "remote", "set-url", "origin", str(moved))
        sha = upstream.commit({"a.txt": "2\n"}, branch="main")
        upstream.push("main")
        rotated = mirror.Mirror(str(moved), state)
        rotated.fetch()
        assert rotated.branches() == {"main": sha}
        rotated.close()


class TestDefaultBranch:
    def test_main(self, upstream: Upstream, source: mirror.Mirror) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.commit({"a.txt": "2\n"}, branch="aaa")  # sorts first; must not win
        upstream.push("main", "aaa")
        assert source.default_branch() is None
        source.fetch()
        assert source.default_branch() == "main"

    def test_trunk(self, tmp_path: Path) -> None:
        upstream = Upstream(tmp_path / "upstream", default="trunk")
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.commit({"a.txt": "2\n"}, branch="trunk")
        upstream.push("main", "trunk")
        source = mirror.Mirror(str(upstream.bare), tmp_path / "mirror.git")
        source.fetch()
        assert source.default_branch() == "trunk"
        source.close()

    def test_a_changed_remote_head_is_picked_up(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.commit({"a.txt": "2\n"}, branch="trunk")
        upstream.push("main", "trunk")
        source.fetch()
        assert source.default_branch() == "main"
        git(upstream.bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
        source.fetch()  # no branch moved: only HEAD changed
        assert source.default_branch() == "trunk"

    def test_a_head_naming_a_missing_branch_is_unknown(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="feature")
        upstream.push("feature")  # the remote's HEAD still names main, which never came
        source.fetch()
        assert source.default_branch() is None


class TestUnavailableRemote:
    def test_missing_remote_fails_and_leaves_no_mirror(self, tmp_path: Path) -> None:
        state = tmp_path / "state" / "mirror.git"
        source = mirror.Mirror(str(tmp_path / "nowhere.git"), state)
        with pytest.raises(errors.SourceUnavailable) as caught:
            source.fetch()
        assert "nowhere.git" in str(caught.value)
        assert "does not appear to be a git repository" in str(caught.value)
        assert not state.exists()
        assert not source.exists()
        assert list(state.parent.iterdir()) == []
        assert source.branches() == {}

    def test_vanished_remote_fails_and_the_last_state_keeps_serving(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        sha = upstream.commit({"agents/a.yaml": "x: 1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        upstream.bare.rename(tmp_path / "elsewhere.git")

        with pytest.raises(mirror.SourceUnavailable) as caught:  # re-exported for callers
            source.fetch()

        assert str(upstream.bare) in str(caught.value)
        assert source.exists()
        assert isinstance(caught.value.__cause__, Exception)
        assert source.branches() == {"main": sha}
        assert source.default_branch() == "main"
        assert source.tree(sha).read("agents/a.yaml", 100) == b"x: 1\n"

    def test_credentials_never_reach_the_error(self, tmp_path: Path) -> None:
        # A token unlike any path or word, so a match can only be the token itself.
        token = "tok-5f0c9d2e"
        url = f"https://user:{token}@127.0.0.1:9/x.git"
        source = mirror.Mirror(url, tmp_path / "mirror.git")
        with pytest.raises(errors.SourceUnavailable) as caught:
            source.fetch()
        message = str(caught.value)
        assert "127.0.0.1" in message
        assert token not in message
        assert token not in "".join(traceback.format_exception(caught.value))
        assert token not in repr(source)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("https://user:secret@host/x.git", "https://***@host/x.git"),
            ("https://token@host/x.git", "https://***@host/x.git"),
            ("see https://a:b@h/x and http://c:d@h/y", "see https://***@h/x and http://***@h/y"),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
            ("/srv/git/repo.git", "/srv/git/repo.git"),
        ],
        ids=["user-and-password", "token-only", "several", "scp-like", "local-path"],
    )
    def test_redaction(self, text: str, expected: str) -> None:
        assert errors.redact(text) == expected


class TestCommits:
    def test_commit_metadata(self, upstream: Upstream, source: mirror.Mirror) -> None:
        sha = upstream.commit(
            {"a.txt": "1\n"},
            message="Tune the triage prompt\n\nLonger explanation.",
            branch="main",
            date="2024-01-02T03:04:05+02:00",
        )
        upstream.push("main")
        source.fetch()
        assert source.commit(sha) == mirror.Commit(
            sha=sha,
            author="t",
            email="t@example.com",
            message="Tune the triage prompt",
            time=datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
        )
        assert source.commit(sha[:12]).sha == sha

    @pytest.mark.parametrize(
        "name",
        ["0" * 40, "main", "HEAD", "--output=/tmp/x", "", "xyz"],
        ids=["absent-sha", "branch-name", "head", "option", "empty", "not-hex"],
    )
    def test_unknown_commit(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path, name: str
    ) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        with pytest.raises(errors.UnknownCommit):
            source.commit(name)
        with pytest.raises(errors.UnknownCommit):
            source.tree(name)
        with pytest.raises(errors.UnknownCommit):
            source.export(name, tmp_path / "out")
        assert not (tmp_path / "out").exists()

    def test_a_tree_is_not_a_commit(self, upstream: Upstream, source: mirror.Mirror) -> None:
        upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        tree = git(upstream.work, "rev-parse", "HEAD^{tree}")
        with pytest.raises(errors.UnknownCommit):
            source.commit(tree)

    def test_nothing_is_known_before_the_first_fetch(self, source: mirror.Mirror) -> None:
        with pytest.raises(errors.UnknownCommit):
            source.commit("0" * 40)

    def test_merge_detection(self, upstream: Upstream, source: mirror.Mirror) -> None:
        base = upstream.commit({"a.txt": "1\n"}, branch="main")
        merged = upstream.commit({"b.txt": "1\n"}, branch="merged")
        open_ = upstream.commit({"c.txt": "1\n"}, branch="open", message="still open")
        git(upstream.work, "checkout", "--quiet", "main")
        git(upstream.work, "merge", "--quiet", "--no-ff", "-m", "merge", "merged")
        upstream.push("main", "merged", "open")
        source.fetch()
        main = source.branches()["main"]

        assert source.is_ancestor(merged, main)
        assert source.is_ancestor(base, main)
        assert source.is_ancestor(main, main)
        assert not source.is_ancestor(open_, main)
        assert not source.is_ancestor(main, merged)
        with pytest.raises(errors.UnknownCommit):
            source.is_ancestor("0" * 40, main)


class TestCommitTree:
    def test_is_a_tree_for_the_loader(self, upstream: Upstream, source: mirror.Mirror) -> None:
        sha = upstream.commit({"a.txt": "1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        tree: Tree = source.tree(sha)  # mypy checks the structural match
        assert isinstance(tree, CommitTree)

    def test_an_older_commit_reads_its_own_content(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        old = upstream.commit({"agents/a.yaml": "version: 1\n"}, branch="main")
        new = upstream.commit(
            {"agents/a.yaml": "version: 2\n", "agents/b.yaml": "new: true\n"}, branch="main"
        )
        upstream.push("main")
        source.fetch()
        assert source.tree(old).read("agents/a.yaml", 100) == b"version: 1\n"
        assert source.tree(old).manifest_paths("agents") == ["agents/a.yaml"]
        assert source.tree(new).read("agents/a.yaml", 100) == b"version: 2\n"
        assert source.tree(new).manifest_paths("agents") == ["agents/a.yaml", "agents/b.yaml"]

    def test_examples_load_to_the_same_versions_as_from_disk(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        copy_examples(upstream.work)
        sha = upstream.commit({}, branch="main", message="add the example agents")
        upstream.push("main")
        source.fetch()

        from_git = loading.collect(source.tree(sha))
        from_disk = loading.collect(FilesystemTree(EXAMPLES))

        assert from_git.ok, [problem.render() for problem in from_git.problems]
        assert from_disk.ok
        assert len(from_git.agents) >= 3
        versions = {agent.name: (agent.version, agent.file) for agent in from_git.agents}
        assert versions == {agent.name: (agent.version, agent.file) for agent in from_disk.agents}

    def test_manifest_paths_match_the_working_tree(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        files: dict[str, str | None] = {
            "agents/b.yaml": "b",
            "agents/a.yml": "a",
            "agents/nested/deep/c.yaml": "c",
            "agents/notes.txt": "not a manifest",
            "agents/.hidden/skipped.yaml": "skipped",
            "agents/.dotfile.yaml": "a dot file, not a dot directory",
            "agents/Z.yaml": "upper case sorts first",
            "agents/ünïcode.yaml": "u",
            "other/d.yaml": "d",
            "top.yaml": "t",
        }
        upstream.symlink("agents/linked.yaml", "b.yaml")
        upstream.symlink("agents/linked-dir", "nested")
        sha = upstream.commit(files, branch="main")
        upstream.push("main")
        source.fetch()
        on_disk, in_git = FilesystemTree(upstream.work), source.tree(sha)

        for root in ["agents", "agents/", "./agents", ".", "agents/b.yaml", "missing", "top.yaml"]:
            assert in_git.manifest_paths(root) == on_disk.manifest_paths(root), root
        assert in_git.manifest_paths("agents") == [
            "agents/.dotfile.yaml",
            "agents/Z.yaml",
            "agents/a.yml",
            "agents/b.yaml",
            "agents/linked.yaml",
            "agents/nested/deep/c.yaml",
            "agents/ünïcode.yaml",
        ]
        assert in_git.manifest_paths("agents/b.yaml/x") == []
        with pytest.raises(TreeError):
            in_git.manifest_paths("../outside")

    @pytest.mark.parametrize(
        ("path", "limit"),
        [
            ("agents/a.yaml", 100),
            ("agents/a.yaml", 5),
            ("agents/inside.yaml", 100),
            ("agents/via-dir/prompt.md", 100),
            ("agents/chain.yaml", 100),
            ("agents/up-and-back.yaml", 100),
            ("agents/outside.yaml", 100),
            ("agents/absolute.yaml", 100),
            ("agents/dangling.yaml", 100),
            ("agents/loop.yaml", 100),
            ("agents", 100),
            ("agents/missing.yaml", 100),
            ("agents/a.yaml/x", 100),
            ("../etc/passwd", 100),
            ("/etc/passwd", 100),
            ("agents/../agents/a.yaml", 100),
        ],
        ids=[
            "file",
            "over-limit",
            "symlink-inside",
            "through-dir-symlink",
            "symlink-chain",
            "symlink-up-and-back",
            "symlink-outside",
            "symlink-absolute",
            "symlink-dangling",
            "symlink-loop",
            "directory",
            "missing",
            "file-as-directory",
            "dotdot-escape",
            "absolute-path",
            "dotdot-inside",
        ],
    )
    def test_read_matches_the_working_tree(
        self, upstream: Upstream, source: mirror.Mirror, path: str, limit: int
    ) -> None:
        upstream.symlink("agents/inside.yaml", "a.yaml")
        upstream.symlink("agents/via-dir", "../prompts")
        upstream.symlink("agents/chain.yaml", "inside.yaml")
        upstream.symlink("agents/up-and-back.yaml", "../agents/./a.yaml")
        upstream.symlink("agents/outside.yaml", "../../../../../../etc/passwd")
        upstream.symlink("agents/absolute.yaml", "/etc/passwd")
        upstream.symlink("agents/dangling.yaml", "nothing.yaml")
        upstream.symlink("agents/loop.yaml", "loop2.yaml")
        upstream.symlink("agents/loop2.yaml", "loop.yaml")
        sha = upstream.commit(
            {"agents/a.yaml": "name: a\n", "prompts/prompt.md": "be kind\n"}, branch="main"
        )
        upstream.push("main")
        source.fetch()

        def outcome(tree: Tree) -> bytes | str:
            try:
                return tree.read(path, limit)
            except TreeError as error:
                return f"TreeError: {error}"

        assert outcome(source.tree(sha)) == outcome(FilesystemTree(upstream.work))

    def test_symlink_outside_is_refused_and_inside_is_followed(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        upstream.symlink("agents/out.yaml", "../../secrets.yaml")
        upstream.symlink("agents/in.yaml", "real/agent.yaml")
        sha = upstream.commit({"agents/real/agent.yaml": "ok: 1\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        tree = source.tree(sha)
        with pytest.raises(TreeError, match="symlink that points outside the repository"):
            tree.read("agents/out.yaml", 100)
        assert tree.read("agents/in.yaml", 100) == b"ok: 1\n"
        assert tree.blob_id("agents/in.yaml") == tree.blob_id("agents/real/agent.yaml")

    def test_a_long_symlink_chain_is_refused(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        for index in range(10):
            upstream.symlink(f"l{index}", f"l{index + 1}")
        sha = upstream.commit({"l10": "end\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        tree = source.tree(sha)
        assert tree.read("l3", 100) == b"end\n"  # 7 links
        with pytest.raises(TreeError, match="Too many levels of symbolic links"):
            tree.read("l0", 100)

    def test_a_submodule_is_not_a_regular_file(
        self, upstream: Upstream, source: mirror.Mirror
    ) -> None:
        head = upstream.commit({"a.txt": "1\n"}, branch="main")
        git(upstream.work, "update-index", "--add", "--cacheinfo", f"160000,{head},agents/sub")
        git(upstream.work, "commit", "--quiet", "-m", "add a submodule")  # not `add --all`
        sha = git(upstream.work, "rev-parse", "HEAD")
        upstream.push("main")
        source.fetch()
        tree = source.tree(sha)
        with pytest.raises(TreeError, match="'agents/sub' is not a regular file"):
            tree.read("agents/sub", 100)
        assert tree.manifest_paths("agents/sub") == []
        assert tree.blob_id("agents/sub") is None

    def test_blob_ids_follow_content(self, upstream: Upstream, source: mirror.Mirror) -> None:
        first = upstream.commit({"a.md": "same\n", "b.md": "same\n"}, branch="main")
        second = upstream.commit({"b.md": "different\n"}, branch="main")
        upstream.push("main")
        source.fetch()
        old, new = source.tree(first), source.tree(second)
        assert old.blob_id("a.md") == old.blob_id("b.md") == new.blob_id("a.md")
        assert new.blob_id("b.md") != old.blob_id("b.md")
        assert old.blob_id("missing.md") is None
        assert old.blob_id(".") is None


class TestExport:
    def test_materializes_the_commit_once(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        copy_examples(upstream.work)
        (upstream.work / "run.sh").write_text("#!/bin/sh\n# $Format:%H$\n")
        (upstream.work / "run.sh").chmod(0o755)
        upstream.symlink("agents/current.md", "prompts/triage.md")
        upstream.symlink("agents/escape", "../../../../etc")
        sha = upstream.commit(
            {".gitattributes": "README.md export-ignore\nrun.sh export-subst\n"}, branch="main"
        )
        upstream.push("main")
        source.fetch()
        destination = tmp_path / "exports" / sha

        assert source.export(sha, destination) == destination

        for relative in ["agents/support-bot.yaml", "agents/prompts/triage.md", "README.md"]:
            assert (destination / relative).read_bytes() == (EXAMPLES / relative).read_bytes()
        assert (destination / "agents/current.md").is_symlink()
        assert (destination / "agents/current.md").read_bytes() == (
            EXAMPLES / "agents/prompts/triage.md"
        ).read_bytes()
        assert not os.path.lexists(destination / "agents/escape")
        assert (destination / "run.sh").read_text() == "#!/bin/sh\n# $Format:%H$\n"
        assert os.access(destination / "run.sh", os.X_OK)
        assert loading.collect(FilesystemTree(destination)).ok
        source.settle()  # the spare for the next export is built beside it
        assert sorted(path.name for path in destination.parent.iterdir()) == [
            mirror.BLOB_STORE,
            spare_trees.SPARES,
            sha,
        ]

        (destination / "marker").write_text("kept")
        assert source.export(sha, destination) == destination
        assert (destination / "marker").read_text() == "kept"

    def test_an_older_commit_exports_its_own_files(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        old = upstream.commit({"a.txt": "old\n", "gone.txt": "x"}, branch="main")
        new = upstream.commit({"a.txt": "new\n", "gone.txt": None}, branch="main")
        upstream.push("main")
        source.fetch()
        source.export(old, tmp_path / "old")
        source.export(new, tmp_path / "new")
        assert (tmp_path / "old" / "a.txt").read_text() == "old\n"
        assert (tmp_path / "new" / "a.txt").read_text() == "new\n"
        assert not (tmp_path / "new" / "gone.txt").exists()

    def test_a_newer_commit_shares_unchanged_files_and_leaves_the_older_untouched(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        old = upstream.commit(
            {"same.txt": "same\n", "a.txt": "old\n", "gone.txt": "x", "dir/only.txt": "1"},
            branch="main",
        )
        new = upstream.commit(
            {"a.txt": "new\n", "gone.txt": None, "dir/only.txt": None, "added.txt": "+"},
            branch="main",
        )
        upstream.push("main")
        source.fetch()
        exports = tmp_path / "checkouts"
        source.export(old, exports / old)
        # An agent of the old commit replaces a committed file in its directory: that
        # must not reach the new commit, which gets exactly what was committed.
        (exports / old / "same.txt").unlink()
        (exports / old / "same.txt").write_text("written by a running agent\n")
        source.export(new, exports / new)

        assert (exports / old / "a.txt").read_text() == "old\n"
        assert (exports / old / "gone.txt").exists()
        assert (exports / new / "a.txt").read_text() == "new\n"
        assert (exports / new / "same.txt").read_text() == "same\n"
        assert (exports / new / "added.txt").read_text() == "+"
        assert not (exports / new / "gone.txt").exists()
        assert not (exports / new / "dir").exists()  # git keeps no empty directories

    def test_a_new_commit_is_a_spare_of_the_last_with_only_what_differs_changed(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        unchanged = {f"same/{n}.txt": f"{n}\n" for n in range(8)}
        old = upstream.commit(
            {**unchanged, "a.txt": "old\n", "f": "file", "dir/sub/x.txt": "x"}, branch="main"
        )
        (upstream.work / "f").unlink()
        new = upstream.commit({"a.txt": "new\n", "f/now-a-dir.txt": "d", "dir/sub/x.txt": None})
        upstream.push("main")
        source.fetch()
        exports = tmp_path / "checkouts"
        source.export(old, exports / old)
        source.settle()
        (spare,) = (exports / spare_trees.SPARES).glob("*/tree.*")
        spare_inode = spare.stat().st_ino
        (exports / old / "written-by-an-agent.txt").write_text("mine")

        source.export(new, exports / new)

        assert (exports / new).stat().st_ino == spare_inode  # the spare became the export
        files = sorted(
            str(path.relative_to(exports / new))
            for path in (exports / new).rglob("*")
            if not path.is_dir()
        )
        assert files == git(upstream.work, "ls-tree", "-r", "--name-only", new).split("\n")
        for name in files:
            committed = git(upstream.work, "show", f"{new}:{name}")  # stripped, as git() does
            assert (exports / new / name).read_text().strip() == committed
        assert not (exports / new / "dir").exists()  # emptied directories go, as in git
        assert (exports / old / "a.txt").read_text() == "old\n"  # the old one is untouched
        assert (exports / old / "dir/sub/x.txt").read_text() == "x"
        assert (exports / old / "f").read_text() == "file"

    def test_unchanged_files_are_shared_and_read_only(
        self, upstream: Upstream, source: mirror.Mirror, tmp_path: Path
    ) -> None:
        (upstream.work / "run.sh").write_text("#!/bin/sh\n")
        (upstream.work / "run.sh").chmod(0o755)
        first = upstream.commit({"same.txt": "same\n", "a.txt": "1"}, branch="main")
        second = upstream.commit({"a.txt": "2"}, branch="main")
        upstream.push("main")
        source.fetch()
        one, two = source.export(first, tmp_path / first), source.export(second, tmp_path / second)

        assert (one / "same.txt").stat().st_ino == (two / "same.txt").stat().st_ino
        assert (one / "a.txt").stat().st_ino != (two / "a.txt").stat().st_ino
        assert os.access(two / "run.sh", os.X_OK)
        # Shared inodes: a write in place would change every commit holding the file.
        assert not (two / "same.txt").stat().st_mode & 0o222
        assert not (two / "run.sh").stat().st_mode & 0o222


def test_branches_contained_in_a_commit(upstream: Upstream, source: mirror.Mirror) -> None:
    base = upstream.commit({"a.txt": "1\n"}, branch="main")
    upstream.commit({"b.txt": "2\n"}, branch="feature")
    upstream.git("checkout", "--quiet", "-b", "fresh", "main")
    upstream.push("main", "feature", "fresh")
    source.fetch()
    assert source.branches_contained_in(base) == {"main", "fresh"}
    assert source.branches_contained_in(source.branches()["feature"]) == {
        "main",
        "fresh",
        "feature",
    }
