# bash completion for upgrade-recovery(8)                          -*- shell-script -*-

_upgrade_recovery()
{
    local cur prev words cword
    _init_completion || return

    local global_opts="--root --config --dir --json -v --verbose -h --help --version"
    local commands="backup list status verify delete rollback-plan recover arm disarm watchdog metrics"

    # The subcommand is the first word that is not an option or an option's argument;
    # for watchdog, the action is the next such word.
    # --root, --config and --dir on the line are also those the ids are listed with.
    local i cmd="" action="" store_opts=()
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --root | --config | --dir)
            ((i + 1 < cword)) && store_opts+=("${words[i]}" "${words[i + 1]}")
            ((i++))
            ;;
        --id | --timeout | --reason | --backup | --output) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${words[i]}
                [[ $cmd == watchdog ]] || break
            else
                action=${words[i]}
                break
            fi
            ;;
        esac
    done

    case $prev in
    --root | --dir)
        _filedir -d
        return
        ;;
    --config)
        _filedir toml
        return
        ;;
    --output)
        _filedir prom
        return
        ;;
    --id | --timeout | --reason)
        return
        ;;
    --backup)
        COMPREPLY=($(compgen -W "$(_upgrade_recovery_ids "${store_opts[@]}")" -- "$cur"))
        return
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=""
    case $cmd in
    backup) opts="--force --id --timeout --dry-run" ;;
    list | status) opts="" ;;
    rollback-plan) opts="--backup" ;;
    verify) opts="" ;;
    delete) opts="--force" ;;
    recover) opts="--resume --restart --step --force --reboot --dry-run --checksum --backup --initrd --abandon" ;;
    arm) opts="--reboot" ;;
    disarm) opts="" ;;
    watchdog)
        # --timeout goes with start, --reason with trigger (upgrade-recovery(8)).
        case $action in
        start) opts="--timeout" ;;
        trigger) opts="--reason" ;;
        esac
        ;;
    metrics) opts="--output" ;;
    esac
    if [[ $cur == -* ]]; then
        # metrics --json is a usage error: its output is the Prometheus text format.
        [[ $cmd == metrics ]] && global_opts=${global_opts/--json /}
        COMPREPLY=($(compgen -W "$opts $global_opts" -- "$cur"))
        return
    fi
    case $cmd in
    verify | delete | arm)
        COMPREPLY=($(compgen -W "$(_upgrade_recovery_ids "${store_opts[@]}")" -- "$cur"))
        ;;
    watchdog)
        if [[ -z $action ]]; then
            COMPREPLY=($(compgen -W "start stop monitor trigger" -- "$cur"))
        elif [[ $action == start ]]; then
            COMPREPLY=($(compgen -W "$(_upgrade_recovery_ids "${store_opts[@]}")" -- "$cur"))
        fi
        ;;
    esac
} &&
    complete -F _upgrade_recovery upgrade-recovery

# Backup ids, from `upgrade-recovery [--root DIR] [--config FILE] [--dir DIR] list --json`
# (fast; fails quietly).
_upgrade_recovery_ids()
{
    upgrade-recovery "$@" list --json 2>/dev/null |
        grep -o '"id"[[:space:]]*:[[:space:]]*"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

# ex: filetype=sh
