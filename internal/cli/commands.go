package cli

// commands is the command table: every sshca command, in the order the
// manual lists them. `sshca -h`, `sshca COMMAND -h`, the man pages and the
// shell completion scripts are all generated from it. Each call builds
// fresh commands, so the flag destinations their closures capture belong
// to one invocation and concurrent Runs (tests, the service) share nothing.
//
// A new command is a constructor in its own file and one line here.
func commands() []*command {
	return []*command{
		// The CA and its policy.
		newInitCommand(),
		newSignCommand("user"),
		newSignCommand("host"),
		newListCommand(),
		newInspectCommand().local(),
		newExplainCommand().local(),
		newRevokeCommand(),
		newKRLCommand(),
		newKRLCheckCommand(),
		newKRLVerifyCommand(),
		newCAShowCommand(),
		newCAListCommand(),
		newCARotateCommand(),
		newCARetireCommand(),
		newCARevokeKeyCommand(),
		newAuditListCommand(),
		newAuditVerifyCommand(),
		newTokenCreateCommand(),
		newTokenListCommand(),
		newTokenRevokeCommand(),
		newTOTPInviteCommand(),
		newTOTPResetCommand(),
		newUserAddCommand(),
		newUserListCommand(),
		newUserRemoveCommand(),
		newUserKeyCommand(),
		newStoreMigrateCommand(),
		newBackupCommand(),
		newRestoreCommand(),
		// The service and its clients.
		newServeCommand(),
		newLoginCommand().local(),
		newStatusCommand().local(),
		newSyncCommand().local(),
		newHostEnrollCommand().local(),
		newSSHDConfigCommand().local(),
		newSSHConfigCommand().local(),
		newKnownHostsCommand().local(),
		newFleetStatusCommand(),
		newFleetWaitCommand(),
		newConsoleLinkCommand(),
		// sshca itself.
		newVersionCommand().local(),
		newCompletionCommand().local(),
		newManCommand().local(),
	}
}

// local marks a command that does not use the CA home: it gets no --home
// and --database flags (login, sync and the other client commands, and
// those that only read files).
func (c *command) local() *command {
	c.noHome = true
	return c
}
